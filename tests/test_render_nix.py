"""The rendered expression, instantiated by real Nix against the stand-in package set: every VM
stage's QEMU command line carries the configured MACs and memory, asks for a KVM builder unless
TCG is pinned, and uses none of the options QEMU has removed.

Only instantiation happens here (no build), so a placeholder kernel tree stands in for Debian's."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOT, env, nix_eval, windows_example
from wingen.config import Config
from wingen.loader import parse_config
from wingen.nixnames import RENAMED, names_for, optional_names
from wingen.render import render
from wingen.runtime.derivation import Dirs, parse_record, plan
from wingen.runtime.vm import VM

pytestmark = pytest.mark.nix

REMOVED = {
    "vlan=": re.compile(r"vlan="),
    "-net nic/vde": re.compile(r"-net\s+(nic|vde)"),
    "migrate_set_speed": re.compile(r"migrate_set_speed"),
    "ensureDir": re.compile(r"\bensureDir\b"),
    "qemu-img -b without -F": re.compile(r"qemu-img create(?![^\n]*-F)[^\n]*\s-b\s"),
}

TOP = """\
let
  pkgs = import {standin} {{ kernelRoot = {kernel}; }};
  vm = pkgs.callPackage {rendered} {{ }};
  probe = derivation {{
    name = "probe"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo" ];
  }};
in {{ inherit (vm) installed base; built = vm.runInVM probe; }}
"""


def _config(example: str, **vm: Any) -> tuple[Config, Path]:
    """An example config and its directory; the Windows one with its Cygwin packages locked
    (against the media tests' fixture setup.ini), so its install media are complete."""
    path = ROOT / "examples" / example
    if example == "wingen.toml":
        path = windows_example(Path(tempfile.mkdtemp(prefix="wingen-example-")))
    data = tomllib.loads(path.read_text())
    data["vm"] = data.get("vm", {}) | vm
    return parse_config(data), path.parent


def _derivations(config: tuple[Config, Path], tmp: Path, kernel: Path) -> dict[str, Any]:
    """Every derivation in the closure of the three stages, as `nix show-derivation` JSON."""
    rendered = tmp / "default.nix"
    rendered.write_text(render(*config).expression)
    parse = subprocess.run(["nix-instantiate", "--parse", str(rendered)], capture_output=True)
    assert parse.returncode == 0, parse.stderr
    top = tmp / "top.nix"
    standin = ROOT / "nix" / "standin" / "default.nix"
    top.write_text(TOP.format(standin=standin, kernel=kernel, rendered=rendered))
    inst = subprocess.run(
        ["nix-instantiate", str(top)], capture_output=True, text=True, env=env(), check=False
    )
    assert inst.returncode == 0, inst.stderr
    drvs = inst.stdout.split()
    show = subprocess.run(
        ["nix", "show-derivation", "-r", *drvs],
        capture_output=True, text=True, env=env(), check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(show.stdout)
    return result


def _vm_stages(drvs: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in drvs.values() if "wingen" in d["env"]]


def _argvs(drv: dict[str, Any]) -> dict[str, list[str]]:
    """Each VM's QEMU command line, as the runtime builds it from the stage's record."""
    rec = parse_record(drv["env"]["wingen"])
    spec = plan(rec, Dirs(Path("/build"), Path("/out")), "tcg")
    return {
        vm.name: VM(vm, qemu="qemu", accel="tcg", rundir=Path("/r"), logdir=Path("/l")).argv()
        for vm in spec.vms
    }


@pytest.mark.parametrize("example", ["wingen.toml", "linux.toml"])
def test_stages_carry_the_configured_vm(example: str, tmp_path: Path, kernel: Path) -> None:
    config = _config(example, memory_mib=1536, extra_qemu_args=["-usb"])
    cfg = config[0]
    stages = _vm_stages(_derivations(config, tmp_path, kernel))
    assert len(stages) == 3, "install, suspend and revive each run VMs"
    for drv in stages:
        assert drv["env"]["requiredSystemFeatures"] == "kvm"
        vms = _argvs(drv)
        guest = " ".join(vms["guest"])
        assert "-m 1536M" in guest
        assert "-usb" in vms["guest"]
        assert f"-smp {cfg.vm.cpus}" in guest
        assert f"-cpu {cfg.vm.cpu_model}" in guest
        assert f"mac={cfg.network.guest_mac}" in guest
        assert re.search(r"-netdev vde,", guest), "-netdev vde, not -net"
        if "controller" in vms:  # the install stage runs the guest alone
            controller = " ".join(vms["controller"])
            assert f"-m {cfg.vm.controller_memory_mib}M" in controller
            assert f"mac={cfg.network.controller_mac}" in controller
    with_controller = [d for d in stages if "controller" in _argvs(d)]
    assert len(with_controller) == 2, "suspend and revive reach the guest through the controller"


@pytest.mark.parametrize("example", ["wingen.toml", "linux.toml"])
def test_no_removed_qemu_options_anywhere(example: str, tmp_path: Path, kernel: Path) -> None:
    drvs = _derivations(_config(example), tmp_path, kernel)
    text = json.dumps(drvs).replace("\\n", "\n")
    # The stage scripts are store files the derivations name; read them too (not binaries).
    for path in set(re.findall(r"/nix/store/[a-z0-9]{32}-[^\"\s\\]*", text)):
        p = Path(path)
        if p.is_file() and p.stat().st_size < 1_000_000 and b"\0" not in p.read_bytes():
            text += "\n" + p.read_text(errors="replace")
    # The QEMU and qemu-img command lines are the runtime's (its overlays: test_derivation.py).
    for source in (ROOT / "generator" / "wingen" / "runtime").glob("*.py"):
        text += "\n" + source.read_text()
    assert "wingen.runtime stage" in text
    found = {name for name, pattern in REMOVED.items() if pattern.search(text)}
    assert found == set()


def test_pinned_tcg_asks_for_no_kvm_builder(tmp_path: Path, kernel: Path) -> None:
    stages = _vm_stages(_derivations(_config("linux.toml", acceleration="tcg"), tmp_path, kernel))
    assert stages
    for drv in stages:
        assert "kvm" not in drv["env"].get("requiredSystemFeatures", "")


def test_the_removed_option_patterns_catch_the_seeds_lines() -> None:
    seed = """
      "-net nic,vlan=0,macaddr=52:54:00:12:01:01"
      "-net vde,vlan=0,sock=$QEMU_VDE_SOCKET"
      migrate_set_speed 4095m
      ensureDir "$out"
      qemu-img create -f qcow2 -b base.qcow2 disk.qcow2
    """
    found = {name for name, pattern in REMOVED.items() if pattern.search(seed)}
    assert found == set(REMOVED)


@pytest.mark.parametrize("example", ["wingen.toml", "linux.toml"])
def test_function_takes_exactly_the_listed_names(example: str, kernel: Path) -> None:
    """The one list in nixnames.py is the expression's arguments, and the stand-in has them all."""
    cfg, config_dir = _config(example)
    text = render(cfg, config_dir).expression
    formals = re.search(r"^\{ ([\w, ?-]+) \}:$", text, re.MULTILINE)
    assert formals, "the expression is a function of a set of names"
    required = [f for f in formals.group(1).split(", ") if "?" not in f]
    optional = [f.removesuffix(" ? null") for f in formals.group(1).split(", ") if "?" in f]
    assert tuple(required) == names_for(cfg.guest)
    assert tuple(optional) == optional_names()
    standin = ROOT / "nix" / "standin" / "default.nix"
    provided = nix_eval(f"builtins.attrNames (import {standin} {{ kernelRoot = {kernel}; }})")
    assert set(names_for(cfg.guest)) <= set(provided)
    # Of a renamed package, the stand-in offers only the current name: an old one that became an
    # alias would fail here as under nixpkgs' allowAliases = false.
    for new, old in RENAMED:
        assert new in provided and old not in provided


def test_a_renamed_package_falls_back_to_its_old_name(kernel: Path) -> None:
    """A nixpkgs from before the rename has only the old name: the expression uses it."""
    cfg, config_dir = _config("linux.toml")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "linux.nix"
        path.write_text(render(cfg, config_dir).expression)
        standin = ROOT / "nix" / "standin" / "default.nix"
        mksquashfs = nix_eval(
            f"let s = import {standin} {{ kernelRoot = {kernel}; }}; "
            f'old = builtins.removeAttrs s [ "squashfs-tools" ] // '
            f'{{ squashfsTools = s."squashfs-tools"; }}; '
            f"f = import {path}; "
            f"w = f (builtins.intersectAttrs (builtins.functionArgs f) old); "
            f"in builtins.unsafeDiscardStringContext w.base.drvPath"
        )
        assert mksquashfs.endswith(".drv")


def test_windows_setup_may_reboot_during_install(tmp_path: Path, kernel: Path) -> None:
    """Windows setup reboots several times; QEMU's -no-reboot would end the install at the first."""
    stages = _vm_stages(_derivations(_config("wingen.toml"), tmp_path, kernel))
    by_stage = {json.loads(d["env"]["wingen"])["stage"]: _argvs(d) for d in stages}
    assert "-no-reboot" not in by_stage["install"]["guest"]
    assert "-no-reboot" in by_stage["suspend"]["guest"]
    # A display device in every stage (Windows needs one; failures save its screen).
    assert all("VGA" in vms["guest"] for vms in by_stage.values())
