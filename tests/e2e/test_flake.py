"""flake.nix against the stand-in package set: packages, overlay, lib, and requireFile's stop."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wingen

from .conftest import E2E, ROOT, STANDIN, windows_example

pytestmark = [pytest.mark.e2e, pytest.mark.nix]


def nix(e2e: E2E, kernel_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **e2e.env,
        "WINGEN_STANDIN_KERNEL": str(kernel_root),
        "WINGEN_STANDIN_PYTHON": sys.executable,
    }
    return subprocess.run(
        ["nix", *args, "--impure", "--override-input", "nixpkgs", f"path:{STANDIN}"],
        env=env,
        cwd=e2e.dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )


def test_windows_base_without_iso_stops_at_require_file(e2e: E2E, kernel_root: Path) -> None:
    # The flake as it is, except that its Windows example gets an offline Cygwin lock.
    repo = e2e.dir / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".git", "__pycache__", ".*cache"))
    (repo / "examples" / "wingen.toml").unlink()
    config = windows_example(repo / "examples")
    # The flake's packages use the render committed beside the config: render this one there.
    rendered = wingen("render", "-c", str(config), "-o", str(repo / "examples" / "wingen.nix"))
    assert rendered.returncode == 0, rendered.stderr
    run = nix(e2e, kernel_root, "build", "--no-link", f"path:{repo}#windowsBase")
    assert run.returncode != 0
    assert "wingen needs the Windows install ISO" in run.stdout, run.stdout
    assert "nix-store --add-fixed sha256 /path/to/Win11_24H2_English_x64.iso" in run.stdout
    assert "wingen[" not in run.stdout  # no VM stage started


def test_flake_outputs(e2e: E2E, kernel_root: Path) -> None:
    def ev(attr: str, apply: str) -> str:
        run = nix(e2e, kernel_root, "eval", "--json", f"path:{ROOT}#{attr}", "--apply", apply)
        assert run.returncode == 0, run.stdout
        return run.stdout.strip().splitlines()[-1]

    assert ev("overlays.default", "builtins.isFunction") == "true"
    assert ev("lib", "l: map builtins.isFunction [ l.runInWindowsVM l.runInLinuxVM ]") == (
        "[true,true]"
    )
    assert ev("packages.x86_64-linux.linuxBase", "d: d.requiredSystemFeatures") == '["kvm"]'
    wingen = nix(e2e, kernel_root, "build", "--no-link", f"path:{ROOT}#wingen")
    assert wingen.returncode == 0, wingen.stdout
    # checks: wingen itself, and the committed example renders compared with fresh ones.
    check = nix(e2e, kernel_root, "flake", "check", f"path:{ROOT}")
    assert check.returncode == 0, check.stdout
    assert "running flake checks" in check.stdout
