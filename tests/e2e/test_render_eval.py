"""Fast checks of the rendered expression (no VM): one-file and directory renders are the same
Nix, and the rendered scripts pass shellcheck (test_render_nix.py checks the QEMU lines)."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from .conftest import ROOT, STANDIN, windows_example

pytestmark = pytest.mark.nix

EXAMPLES = {"linux": ROOT / "examples" / "linux.toml", "windows": ROOT / "examples" / "wingen.toml"}


def render_to(tmp: Path, guest: str, data_patch: dict[str, object] | None = None) -> Path:
    from wingen.loader import parse_config
    from wingen.render import render

    example = EXAMPLES[guest] if guest == "linux" else windows_example(tmp / "example")
    data = tomllib.loads(example.read_text())
    for section, values in (data_patch or {}).items():
        assert isinstance(values, dict)
        data.setdefault(section, {}).update(values)
    cfg = parse_config(data)
    one = tmp / f"{guest}.nix"
    one.write_text(render(cfg, example.parent).expression)
    tree = tmp / f"{guest}-tree"
    result = render(cfg, example.parent, separate_files=True)
    for rel, text in {"default.nix": result.expression, **result.files}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    return tmp


def nix_eval(tmp: Path, expr: str) -> object:
    conf = tmp / "nix-conf"
    conf.mkdir(exist_ok=True)
    (conf / "nix.conf").write_text("sandbox = false\nbuild-users-group =\nsubstituters =\n")
    proc = subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "-E",
            f'let pkgs = import {STANDIN} {{ kernelRoot = ""; }}; in {expr}',
        ],
        env={"NIX_CONF_DIR": str(conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("guest", ["linux", "windows"])
def test_directory_render_is_the_same_nix(tmp_path: Path, guest: str) -> None:
    render_to(tmp_path, guest)
    paths = [tmp_path / f"{guest}.nix", tmp_path / f"{guest}-tree" / "default.nix"]
    drvs = [nix_eval(tmp_path, f"(pkgs.callPackage {p} {{ }}).base.drvPath") for p in paths]
    assert drvs[0] == drvs[1]


@pytest.mark.parametrize("guest", ["linux", "windows"])
def test_rendered_scripts_pass_shellcheck(tmp_path: Path, guest: str) -> None:
    render_to(tmp_path, guest)
    scripts = sorted((tmp_path / f"{guest}-tree").rglob("*.sh"))
    assert len(scripts) >= 5
    proc = subprocess.run(
        ["shellcheck", *map(str, scripts)], stdout=subprocess.PIPE, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout
