"""Helpers the tests share: the CLI as a process, and real Nix with offline settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NIX_CONFIG = "\n".join(
    [
        "sandbox = false",
        "build-users-group =",
        "substituters =",
        "experimental-features = nix-command flakes",
    ]
)


def env() -> dict[str, str]:
    """The environment for child processes: this checkout's wingen, Nix offline and unsandboxed."""
    out = dict(os.environ)
    out["PYTHONPATH"] = str(ROOT / "generator") + os.pathsep + out.get("PYTHONPATH", "")
    out["NIX_CONFIG"] = NIX_CONFIG
    return out


def wingen(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wingen.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env(),
        check=False,
    )


def nix_eval(expr: str, *, cwd: Path | None = None) -> Any:
    """Evaluate a Nix expression strictly with real Nix and return it as JSON data."""
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env(),
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"nix-instantiate failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def windows_example(into: Path) -> Path:
    """examples/wingen.toml made renderable offline: its Cygwin packages locked against the media
    tests' small setup.ini (a fixture, not a real mirror) and a placeholder installer pin."""
    from typer.testing import CliRunner

    from wingen.cli import app

    text = (ROOT / "examples" / "wingen.toml").read_text()
    text = text.replace('packages = ["make", "gcc-core"]', 'packages = ["make"]')
    pin = 'setup = { url = "https://cygwin.com/setup-x86_64.exe", sha256 = "' + "1" * 64 + '" }'
    text = text.replace("[cygwin]", "[cygwin]\n" + pin, 1)
    into.mkdir(parents=True, exist_ok=True)
    config = into / "wingen.toml"
    config.write_text(text)
    setup_ini = ROOT / "tests" / "media" / "fixtures" / "setup.ini"
    result = CliRunner().invoke(
        app, ["cygwin", "lock", "--setup-ini", str(setup_ini), "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    return config


def assert_render_refuses(text: str, field: str, tmp_path: Path) -> None:
    """`wingen render` of config text ends in one error line naming `field`, with the fix last
    in parentheses, exit 2, no traceback, and nothing written beside the config."""
    config = tmp_path / "wingen.toml"
    config.write_text(text)
    proc = wingen("render", "-c", str(config), "-o", str(tmp_path / "out.nix"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {field}: "), lines[0]
    assert lines[0].endswith(")"), "the fix comes last, in parentheses"
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [config], "nothing half-written"
