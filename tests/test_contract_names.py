"""Issue 20 item 4: the names the runtime, the controller and the guests share through the
exchange dir, and their exit codes, are spelled once (runtime/contract.py): no template or
runtime module writes one itself."""

from __future__ import annotations

import re

import pytest

from helpers import ROOT
from wingen.runtime import contract

SHARED = (
    "SAVED_ENV", "EXIT_FILE", "SSH_DEADLINE", "GUEST_COMMAND", "HOLD_COMMAND", "BUILD_SCRIPT",
    "BUILD_LOG", "GUEST_RESULT", "OUTPUTS_LIST", "OUTPUTS_ARCHIVE",
)  # fmt: skip


def code_lines(text: str) -> list[str]:
    """A file's lines without comments (shell and Python) or docstring-looking prose."""
    return [line for line in text.splitlines() if not line.strip().startswith(("#", '"""'))]


@pytest.mark.parametrize("name", SHARED)
def test_each_shared_name_is_spelled_once(name: str) -> None:
    value = getattr(contract, name)
    # As a path component or a quoted string: "in-vm-exit", /in-vm-exit, 'saved-env'.
    spelled = re.compile(rf"""["'/]{re.escape(value)}(["'\s]|$)""")
    files = [*(ROOT / "templates").rglob("*.j2"), *(ROOT / "generator" / "wingen").rglob("*.py")]
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in files
        if path.name != "contract.py"
        for line in code_lines(path.read_text())
        if spelled.search(line)
    ]
    assert found == []


def test_exit_codes_reach_the_shells_from_the_contract() -> None:
    for path in (ROOT / "templates").rglob("*.j2"):
        for line in code_lines(path.read_text()):
            assert not re.search(r"\bexit (97|98)\b", line), f"{path.name}: {line}"
