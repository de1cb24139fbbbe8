"""Template revive from a read-only store file owned by another user, as a non-root user (as a
multi-user Nix builds): zero-copy on QEMU >= 8.2, a private copy on QEMU 7.2.  Real QEMUs,
real users (`nobody` owns the store copy, `nixbld1` revives)."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from revive_child import run_as, store_copy
from rthelpers import QEMU, READY, processes_mentioning

from wingen.runtime.firmware import write_bios
from wingen.runtime.qemu_caps import QemuCaps
from wingen.runtime.snapshot import meta_path, ram_path, save
from wingen.runtime.supervise import Supervisor
from wingen.runtime.template_ram import TemplateRam, plan
from wingen.runtime.vm import VM, VMSpec

pytestmark = pytest.mark.qemu

BUILDER = "nixbld1"
MARK_ADDR = 0x2000000


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user can read (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        pytest.fail("these tests chown files to other users: run them as root (CI does)")
    d = Path(tempfile.mkdtemp(prefix="wingen-shared-"))
    d.chmod(0o755)
    yield d
    assert processes_mentioning(str(d)) == []
    shutil.rmtree(d)


def save_state(qemu: str, accel: str, d: Path, data: bytes, compression: str = "template") -> Path:
    bios = write_bios(d / "bios.bin", READY + "\r\n", end="count")
    marker = d / "marker.bin"
    marker.write_bytes(data)
    args = ["-bios", str(bios), "-device", f"loader,file={marker},addr={MARK_ADDR:#x},force-raw=on"]
    (d / "src").mkdir()
    vm = VM(
        VMSpec(name="src", memory_mib=256, args=args, template=compression == "template"),
        qemu=qemu,
        accel=accel,
        rundir=d / "src",
        logdir=d / "src",
    )
    with Supervisor() as sup:
        vm.start(sup)
        vm.connect(20)
        state = d / "saved" / "state"
        ram = vm.ram_file if compression == "template" else None
        save(vm.client(), state, compression, sup=sup, deadline=60, ram_file=ram)
        vm.close(sup)
    return state


def check_revive(
    qemu: str, accel: str, shared: Path, compression: str = "template"
) -> dict[str, Any]:
    data = os.urandom(64 << 10)
    state = save_state(qemu, accel, shared, data, compression)
    stored = store_copy(state, shared / "store")
    template = compression == "template"
    digest = hashlib.sha256(ram_path(stored).read_bytes()).hexdigest() if template else ""
    spec = {
        "qemu": qemu,
        "accel": accel,
        "args": ["-bios", str(shared / "bios.bin")],
        "state": str(stored),
        "mib": 256,
        "rundir": str(shared / "run"),
        "peek": [MARK_ADDR, len(data)],
        "compression": compression,
    }
    result = run_as(BUILDER, spec, timeout=120)
    assert result["uid"] == pwd.getpwnam(BUILDER).pw_uid
    assert result["peek_sha256"] == hashlib.sha256(data).hexdigest()  # the saved RAM is back
    assert stored.stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert stored.stat().st_mode & 0o777 == 0o444
    if template:
        ram = ram_path(stored)
        assert hashlib.sha256(ram.read_bytes()).hexdigest() == digest  # never written back
    return result


def test_zero_copy_revive_from_a_store_owned_by_another_user(accel: str, shared: Path) -> None:
    qemu = shutil.which(QEMU)
    assert qemu is not None
    result = check_revive(qemu, accel, shared)
    assert "readonly=on,rom=off" in result["argv"]
    assert f"mem-path={shared / 'store' / 'state.ram'}" in result["argv"]
    assert result["copied"] is False
    assert "sparse copy" not in result["log"]


def test_qemu_7_2_revives_a_copy_of_a_store_it_cannot_write(
    accel: str, shared: Path, old_qemu: str
) -> None:
    # The unpacked 7.2 lives under root's cache: give the builder its own copy.
    cache = Path(old_qemu).parent.parent
    for part in ("bin", "root"):
        shutil.copytree(cache / part, shared / "qemu-7.2" / part, symlinks=True)
    qemu = str(shared / "qemu-7.2" / "bin" / "qemu-system-x86_64")
    result = check_revive(qemu, accel, shared)
    assert "readonly=on" not in result["argv"]
    assert result["copied"] is True
    assert "revived a sparse copy" in result["log"]


def test_mapped_ram_state_revives_from_a_store_owned_by_another_user(
    accel: str, shared: Path
) -> None:
    qemu = shutil.which(QEMU)
    assert qemu is not None
    check_revive(qemu, accel, shared, "none")
    stored = shared / "store" / "state"
    assert json.loads(meta_path(stored).read_text())["format"] == "mapped-ram"  # QEMU 10


def test_qemu_7_2_saves_none_as_a_stream(accel: str, shared: Path, old_qemu: str) -> None:
    state = save_state(old_qemu, accel, shared, os.urandom(4096), "none")
    assert not meta_path(state).exists()  # no mapped-ram: the plain stream, nothing to record
    assert state.stat().st_size < 16 << 20  # zero pages are not in a stream


CAPS_10 = QemuCaps((10, 0, 2), frozenset({"x-ignore-shared"}), frozenset({"readonly", "rom"}))
CAPS_7_2 = QemuCaps((7, 2, 0), frozenset({"x-ignore-shared"}), frozenset({"readonly"}))


def test_plan_maps_in_place_whenever_qemu_can(tmp_path: Path) -> None:
    stored = tmp_path / "state.ram"
    stored.write_bytes(b"")
    copy = tmp_path / "copy.ram"
    assert plan(stored, copy, CAPS_10) == TemplateRam(stored, "readonly=on,rom=off")
    assert plan(stored, copy, CAPS_7_2) == TemplateRam(stored, "")  # writable: in place
