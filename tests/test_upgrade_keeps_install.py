"""Issue 20 item 5: upgrading wingen keeps the installed guest. A copy of the package is edited
as an upgrade would edit it (a comment and a docstring in a runtime file, a line of the revive
code and of the build's, a line of the controller's init script, the version), rendered again,
and instantiated by real Nix against the stand-in set: `installed` is the same derivation (no
reinstall), `base` is not. A change to code the install runs changes `installed`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import ROOT, env, windows_example
from test_render_nix import TOP

pytestmark = pytest.mark.nix

Edit = Callable[[Path], None]


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name}: {old!r} moved"
    path.write_text(text.replace(old, new))


def comment_and_docstring(pkg: Path) -> None:
    stage = pkg / "wingen" / "runtime" / "stage.py"
    _replace(stage, "class Stage:\n", "# An upgrade's new comment.\nclass Stage:\n")
    _replace(stage, '"""Run one stage:', '"""Run one stage (an upgrade reworded this):')


def revive_line(pkg: Path) -> None:
    _replace(
        pkg / "wingen" / "runtime" / "saved.py",
        "    started = time.monotonic()\n",
        "    started = time.monotonic()\n    log('revive: starting')\n",
    )


def build_line(pkg: Path) -> None:
    _replace(
        pkg / "wingen" / "runtime" / "guest_io.py",
        "    archive = dirs.control / OUTPUTS_ARCHIVE\n",
        "    archive = dirs.control / OUTPUTS_ARCHIVE\n    assert archive.name\n",
    )


def controller_line(pkg: Path) -> None:
    _replace(pkg / "wingen" / "templates" / "scripts" / "controller-init.sh.j2", "set -u\n",
             "set -u\necho 'wingen-controller: an upgrade'\n")  # fmt: skip


def version(pkg: Path) -> None:
    _replace(pkg / "wingen" / "__init__.py", '__version__ = "', '__version__ = "9.')


def install_code(pkg: Path) -> None:
    _replace(pkg / "wingen" / "runtime" / "vm.py", '"-display",\n', '"-display",  # x\n')
    _replace(pkg / "wingen" / "runtime" / "vm.py", '"none",\n', '"none" if True else "",\n')


UPGRADE: list[Edit] = [comment_and_docstring, revive_line, build_line, controller_line, version]


def package(tmp: Path, edits: list[Edit]) -> Path:
    """wingen as a wheel lays it out (templates inside the package), edited."""
    pkg = tmp / "pkg"
    shutil.copytree(ROOT / "generator" / "wingen", pkg / "wingen",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copytree(ROOT / "templates", pkg / "wingen" / "templates")
    for edit in edits:
        edit(pkg)
    return pkg


def stages(tmp: Path, config: Path, edits: list[Edit], kernel: Path) -> dict[str, str]:
    """The derivation paths of `installed` and `base`, rendered by the edited package."""
    pkg = package(tmp, edits)
    rendered = tmp / "default.nix"
    proc = subprocess.run(
        [sys.executable, "-m", "wingen.cli", "render", "-c", str(config), "-o", str(rendered)],
        env={**env(), "PYTHONPATH": str(pkg)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    top = tmp / "top.nix"
    standin = ROOT / "nix" / "standin" / "default.nix"
    top.write_text(TOP.format(standin=standin, kernel=kernel, rendered=rendered))
    drvs = {}
    for attr in ("installed", "base"):
        inst = subprocess.run(["nix-instantiate", str(top), "-A", attr], env=env(),
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert inst.returncode == 0, inst.stderr
        drvs[attr] = inst.stdout.strip()
    return drvs


@pytest.mark.parametrize("guest", ["linux", "windows"])
def test_an_upgrade_keeps_the_installed_guest(tmp_path: Path, kernel: Path, guest: str) -> None:
    if guest == "windows":
        config = windows_example(tmp_path / "config")
    else:
        config = tmp_path / "config" / "linux.toml"
        config.parent.mkdir()
        shutil.copy(ROOT / "examples" / "linux.toml", config)
    before = stages(tmp_path / "before", config, [], kernel)
    after = stages(tmp_path / "after", config, UPGRADE, kernel)
    assert after["installed"] == before["installed"]
    assert after["base"] != before["base"]
    for edit in UPGRADE:  # each edit alone, too (none of them hides behind another)
        alone = stages(tmp_path / edit.__name__, config, [edit], kernel)
        assert alone["installed"] == before["installed"], edit.__name__
    changed = stages(tmp_path / "install-code", config, [install_code], kernel)
    assert changed["installed"] != before["installed"]
