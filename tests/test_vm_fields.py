"""Issue 20 item 3: one table of VM fields (runtime/spec.py SCALARS). The config's patterns, the
rendered vmRecord and the guest's settings come from it, and vm.machine_type, added through it,
goes from the config to QEMU's command line (real Nix evaluates the render; QEMU itself lists the
machine type)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from test_render_nix import _derivations, _vm_stages
from wingen.errors import UserError
from wingen.loader import parse_config
from wingen.runtime.derivation import Dirs, parse_record, plan
from wingen.runtime.spec import SCALAR, SCALARS, STRUCTURED, VM_KEYS, VMSpec
from wingen.runtime.vm import VM, device_args

LINUX = {"name": "fields", "guest": "linux"}


def test_the_table_and_vmspec_agree() -> None:
    typed = {f.name for f in dataclasses.fields(VMSpec)}
    assert VM_KEYS == typed == {"name", *SCALAR, *STRUCTURED}
    defaults = {f.name: f.default for f in dataclasses.fields(VMSpec)}
    for scalar in SCALARS:
        if scalar.default is not None:
            assert defaults[scalar.name] == scalar.default, scalar.name


@pytest.mark.parametrize("bad", ["Q35", "pc q35", "-machine", "pc,accel=kvm"])
def test_a_bad_machine_type_names_the_field(bad: str) -> None:
    with pytest.raises(UserError) as info:
        parse_config({**LINUX, "vm": {"machine_type": bad}})
    assert str(info.value).startswith("vm.machine_type: ")
    assert "-machine help" in str(info.value)


def record_of(tmp_path: Path, kernel: Path, vm: dict[str, object], stage: str) -> dict[str, Any]:
    """The `wingen` record of a stage of a rendered Linux config, as real Nix instantiates it."""
    drvs = _derivations((parse_config({**LINUX, "vm": vm}), tmp_path), tmp_path, kernel)
    records = [json.loads(d["env"]["wingen"]) for d in _vm_stages(drvs)]
    record: dict[str, Any] = next(r for r in records if r["stage"] == stage)
    return record


@pytest.mark.nix
def test_machine_type_reaches_qemu(tmp_path: Path, kernel: Path) -> None:
    machines = subprocess.run(["qemu-system-x86_64", "-machine", "help"], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
    assert "q35 " in machines  # a machine type this QEMU has
    raw = record_of(tmp_path, kernel, {"machine_type": "q35"}, "suspend")
    rec = parse_record(json.dumps(raw))
    spec = plan(rec, Dirs(work=tmp_path, out=tmp_path / "out"), "tcg")
    guest = next(vm for vm in spec.vms if vm.name == "guest")
    assert guest.machine_type == "q35"
    assert device_args(guest)[2:4] == ["-machine", "q35"]
    controller = next(vm for vm in spec.vms if vm.name == "controller")
    assert "-machine" not in VM(controller, qemu="q", accel="tcg", rundir=tmp_path,
                                logdir=tmp_path).argv()  # fmt: skip


@pytest.mark.nix
def test_an_unset_field_is_not_in_the_record(tmp_path: Path, kernel: Path) -> None:
    """A field left at its default is absent: adding one later changes no derivation."""
    guest = record_of(tmp_path, kernel, {}, "install")["guest"]
    assert isinstance(guest, dict)
    assert "machine_type" not in guest and "vga" not in guest
    assert guest["memory_mib"] == 2048
