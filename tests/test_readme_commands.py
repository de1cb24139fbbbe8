"""The README's command table lists every command the CLI has (derived from the CLI itself)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer.main

from helpers import ROOT
from wingen.cli import app


def _commands(group: Any, prefix: str = "") -> Iterator[str]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield prefix + name


def test_the_commands_table_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `wingen ")]
    commands = sorted(_commands(typer.main.get_command(app)))
    assert {"check", "cygwin lock", "prefetch", "render"} <= set(commands)
    missing = [c for c in commands if not any(row.startswith(f"| `wingen {c}") for row in rows)]
    assert not missing, f"add these to README.md's Commands table: {missing}"
