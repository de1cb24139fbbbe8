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
