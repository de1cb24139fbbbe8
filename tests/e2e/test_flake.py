"""flake.nix against the stand-in package set: packages, overlay, lib, and requireFile's stop."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wingen
from wingen import __version__ as wingen_version_str

from .conftest import E2E, ROOT, STANDIN, windows_example

pytestmark = [pytest.mark.e2e, pytest.mark.nix]


def nix(e2e: E2E, kernel_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **e2e.env,
        "WINGEN_STANDIN_KERNEL": str(kernel_root),
        "WINGEN_STANDIN_PYTHON": sys.executable,
    }
    # The stand-in as nixpkgs; before a `--`, whose words go to the program `nix run` starts.
    cut = args.index("--") if "--" in args else len(args)
    standin = ("--impure", "--override-input", "nixpkgs", f"path:{STANDIN}")
    return subprocess.run(
        ["nix", *args[:cut], *standin, *args[cut:]],
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


def test_flake_show_lists_apps_dev_shells_and_templates_without_ifd(
    e2e: E2E, kernel_root: Path
) -> None:
    show = nix(
        e2e,
        kernel_root,
        "flake",
        "show",
        "--json",
        "--option",
        "allow-import-from-derivation",
        "false",
        f"path:{ROOT}",
    )
    assert show.returncode == 0, show.stdout
    tree = json.loads(show.stdout.strip().splitlines()[-1])
    assert tree["apps"]["x86_64-linux"]["default"]["type"] == "app"
    assert tree["devShells"]["x86_64-linux"]["default"]["type"] == "derivation"
    assert "Windows build VM" in tree["templates"]["default"]["description"]


def test_app_runs_the_cli_and_dev_shell_instantiates(e2e: E2E, kernel_root: Path) -> None:
    run = nix(e2e, kernel_root, "run", f"path:{ROOT}", "--", "--version")
    assert run.returncode == 0, run.stdout
    assert run.stdout.strip().splitlines()[-1].endswith(wingen_version_str)
    shell = nix(
        e2e, kernel_root, "eval", "--raw", f"path:{ROOT}#devShells.x86_64-linux.default.drvPath"
    )
    assert shell.returncode == 0, shell.stdout
    assert shell.stdout.strip().splitlines()[-1].endswith("-nix-shell.drv")


def test_template_inits_a_project_that_evaluates_without_ifd(e2e: E2E, kernel_root: Path) -> None:
    # `flake init` locks the template's flake first: a copy whose lock names the stand-in.
    source = e2e.dir / "template-source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "__pycache__", ".*cache"))
    lock = nix(e2e, kernel_root, "flake", "lock", f"path:{source}")
    assert lock.returncode == 0, lock.stdout
    project = e2e.dir / "from-template"
    project.mkdir()
    init = subprocess.run(
        ["nix", "flake", "init", "-t", f"path:{source}"],
        env=e2e.env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert sorted(p.name for p in project.iterdir()) == [
        "README.md",
        "flake.nix",
        "wingen.nix",
        "wingen.toml",
    ]
    assert (project / "wingen.toml").read_text() == (
        ROOT / "templates/init/windows.toml"
    ).read_text()
    for attr in ("default", "windowsBase"):
        run = nix(
            e2e,
            kernel_root,
            "eval",
            "--raw",
            "--option",
            "allow-import-from-derivation",
            "false",
            "--override-input",
            "wingen",
            f"path:{source}",
            f"path:{project}#packages.x86_64-linux.{attr}.drvPath",
        )
        assert run.returncode == 0, run.stdout
        assert run.stdout.strip().splitlines()[-1].endswith(".drv")
