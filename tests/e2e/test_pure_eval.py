"""Evaluation as Hydra and `nix flake show` do it: import-from-derivation refused, evaluation pure
(flakes) or restricted to the search path (nix-instantiate --restrict-eval). The flake's packages
and checks, and rendered expressions, must instantiate there. No kernel, no build: eval only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import NIX_CONFIG

from .conftest import ROOT, STANDIN

pytestmark = pytest.mark.nix

NO_IFD = ("--option", "allow-import-from-derivation", "false")
SYSTEM = "x86_64-linux"


def run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "nix-conf"
    conf.mkdir(exist_ok=True)
    (conf / "nix.conf").write_text(NIX_CONFIG + "\n")
    # Nothing from the caller's environment: no NIX_PATH, no stand-in kernel or python.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NIX_CONF_DIR": str(conf)}
    return subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )


def flake(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The nix CLI on this checkout's flake, nixpkgs being the stand-in; pure (no --impure)."""
    return run(tmp_path, "nix", *argv, "--override-input", "nixpkgs", f"path:{STANDIN}", *NO_IFD)


@pytest.mark.parametrize("mode", [(), ("--impure",)], ids=["pure", "impure"])
def test_flake_show_lists_the_packages_without_ifd(tmp_path: Path, mode: tuple[str, ...]) -> None:
    show = flake(tmp_path, "flake", "show", f"path:{ROOT}", *mode)
    assert show.returncode == 0, show.stderr
    for name in ("windowsBase", "linuxBase", "wingen", "examples-rendered"):
        assert name in show.stdout, show.stdout


@pytest.mark.parametrize(
    "attr",
    [
        f"packages.{SYSTEM}.wingen",
        f"packages.{SYSTEM}.windowsBase",
        f"packages.{SYSTEM}.linuxBase",
        f"checks.{SYSTEM}.examples-rendered",
    ],
)
def test_flake_outputs_instantiate_pure_without_ifd(tmp_path: Path, attr: str) -> None:
    ev = flake(tmp_path, "eval", "--raw", f"path:{ROOT}#{attr}.drvPath")
    assert ev.returncode == 0, ev.stderr
    assert ev.stdout.startswith("/nix/store/") and ev.stdout.endswith(".drv")


def instantiate_restricted(tmp_path: Path, expr: str) -> subprocess.CompletedProcess[str]:
    return run(
        tmp_path,
        "nix-instantiate",
        "--restrict-eval",
        *NO_IFD,
        "-I",
        f"standin={STANDIN}",
        "-I",
        f"wingen={ROOT}",
        "-E",
        expr,
    )


@pytest.mark.parametrize(
    ("expr", "count"),
    [
        # The flake's outputs function, called as Hydra's legacy evaluator would see it.
        (
            "let outputs = (import <wingen/flake.nix>).outputs; "
            "self = outputs { inherit self; nixpkgs = <standin>; }; "
            f"in with self.packages.{SYSTEM}; "
            f"[ wingen windowsBase linuxBase self.checks.{SYSTEM}.examples-rendered ]",
            4,
        ),
        # A rendered expression of each guest, called with the stand-in as nixpkgs.
        (
            "let p = import <standin> { }; in { "
            "w = (p.callPackage <wingen/examples/wingen.nix> { }).windowsBase; "
            "l = (p.callPackage <wingen/examples/linux.nix> { }).linuxBase; }",
            2,
        ),
    ],
    ids=["flake", "rendered"],
)
def test_instantiate_under_restrict_eval_without_ifd(tmp_path: Path, expr: str, count: int) -> None:
    inst = instantiate_restricted(tmp_path, expr)
    assert inst.returncode == 0, inst.stderr
    drvs = inst.stdout.split()
    assert len(drvs) == count and all(d.endswith(".drv") for d in drvs), inst.stdout


def test_ifd_is_refused_by_these_settings(tmp_path: Path) -> None:
    """The settings bite: the IFD convenience path (lib.runInLinuxVM ./config) is refused."""
    expr = (
        "let outputs = (import <wingen/flake.nix>).outputs; "
        "self = outputs { inherit self; nixpkgs = <standin>; }; "
        "in (self.lib.fromConfig <wingen/examples/linux.toml>).linuxBase"
    )
    inst = instantiate_restricted(tmp_path, expr)
    assert inst.returncode != 0
    assert "import-from-derivation" in inst.stderr or "IFD" in inst.stderr, inst.stderr
