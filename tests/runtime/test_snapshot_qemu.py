"""Save and revive a real QEMU (the generated tiny guest): state kept, bad files refused,
a guest killed mid-save, deadlines."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from rthelpers import READY, children_of, make_vm, processes_mentioning

from wingen.runtime.firmware import COUNTER, write_bios
from wingen.runtime.qmp import QMPClient
from wingen.runtime.snapshot import SnapshotError, meta_path, ram_path, restore, save
from wingen.runtime.supervise import Supervisor
from wingen.runtime.vm import VM, Restore

pytestmark = pytest.mark.qemu

MARK_ADDR = 0x2000000


def pmem(client: QMPClient, addr: int, size: int, tmp_path: Path) -> bytes:
    out = tmp_path / "pmem.bin"
    client.execute("pmemsave", {"val": addr, "size": size, "filename": str(out)})
    return out.read_bytes()


def counter(client: QMPClient, tmp_path: Path) -> int:
    return int.from_bytes(pmem(client, COUNTER, 4, tmp_path), "little")


def wait_ready(vm: VM) -> None:
    end = time.monotonic() + 10
    while READY not in (vm.serial_log.read_text() if vm.serial_log.exists() else ""):
        assert time.monotonic() < end, vm.report()
        time.sleep(0.02)


@pytest.fixture
def counting_bios(tmp_path: Path) -> Path:
    return write_bios(tmp_path / "count.bin", READY + "\r\n", end="count")


def start_source(
    tmp_path: Path, accel: str, bios: Path, sup: Supervisor, data: bytes, template: bool = False
) -> VM:
    marker = tmp_path / "marker.bin"
    marker.write_bytes(data)
    vm = make_vm(
        tmp_path,
        accel,
        bios,
        "src",
        args=["-device", f"loader,file={marker},addr={MARK_ADDR:#x},force-raw=on"],
        template=template,
    )
    vm.start(sup)
    vm.connect(10)
    wait_ready(vm)
    return vm


@pytest.mark.parametrize(
    ("compression", "mapped"),
    [("zstd", None), ("gzip", None), ("none", None), ("none", False)],
    ids=["zstd", "gzip", "none", "none-pipe"],
)
def test_round_trip_keeps_guest_state(
    tmp_path: Path,
    accel: str,
    counting_bios: Path,
    sup: Supervisor,
    compression: str,
    mapped: bool | None,
) -> None:
    data = os.urandom(64 << 10)
    src = start_source(tmp_path, accel, counting_bios, sup, data)
    src.client().execute("stop")
    before = counter(src.client(), tmp_path)
    assert before > 0  # the guest ran and wrote its RAM
    state = tmp_path / "out" / "state"
    save(src.client(), state, compression, sup=sup, deadline=30, mapped=mapped)
    assert src.proc is not None and src.proc.wait(5) == 0
    # QEMU 10 has mapped-ram: `none` becomes a sparse mapped-ram file, and says so beside it
    as_file = compression == "none" and mapped is None
    files = {"state", "state.json"} if as_file else {"state"}
    assert {p.name for p in state.parent.iterdir()} == files  # no temp file left
    if as_file:
        assert json.loads(meta_path(state).read_text())["format"] == "mapped-ram"
        assert state.stat().st_size >= 256 << 20  # RAM at its own offsets ...
        assert state.stat().st_blocks * 512 < 8 << 20  # ... zero pages are holes

    dst = make_vm(tmp_path, accel, counting_bios, "dst", restore=Restore(state, compression))
    dst.start(sup)
    restore(dst.connect(10), state, compression, sup=sup, deadline=30, cont=False)
    c = dst.client()
    assert pmem(c, MARK_ADDR, len(data), tmp_path) == data
    assert counter(c, tmp_path) == before
    assert c.execute("query-status")["status"] == "paused"
    c.execute("cont")
    time.sleep(0.3)
    assert counter(c, tmp_path) > before  # the revived guest runs on from where it was
    dst.close(sup)


def test_template_round_trip(
    tmp_path: Path, accel: str, counting_bios: Path, sup: Supervisor
) -> None:
    data = os.urandom(64 << 10)
    src = start_source(tmp_path, accel, counting_bios, sup, data, template=True)
    src.client().execute("stop")
    before = counter(src.client(), tmp_path)
    state = tmp_path / "out" / "state"
    result = save(src.client(), state, "template", sup=sup, deadline=30, ram_file=src.ram_file)
    assert result["state_bytes"] < 2 << 20  # device state only
    ram = ram_path(state)
    assert ram.stat().st_size == 256 << 20
    assert ram.stat().st_blocks * 512 < 2 << 20  # sparse: zero pages take no disk
    digest = hashlib.sha256(ram.read_bytes()).hexdigest()

    dst = make_vm(tmp_path, accel, counting_bios, "dst", restore=Restore(state, "template"))
    t0 = time.monotonic()
    dst.start(sup)
    restore(dst.connect(10), state, "template", sup=sup, deadline=30, cont=False)
    c = dst.client()
    assert pmem(c, MARK_ADDR, len(data), tmp_path) == data
    assert counter(c, tmp_path) == before
    c.execute("cont")
    assert time.monotonic() - t0 < 2
    time.sleep(0.3)
    assert counter(c, tmp_path) > before  # the guest writes its RAM ...
    dst.close(sup)
    assert hashlib.sha256(ram.read_bytes()).hexdigest() == digest  # ... never the stored file


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_truncated_state_is_refused(
    tmp_path: Path, accel: str, bios: Path, sup: Supervisor, compression: str
) -> None:
    src = start_source(tmp_path, accel, bios, sup, os.urandom(4 << 20))
    state = tmp_path / "state"
    save(src.client(), state, compression, sup=sup, deadline=30)
    full = state.read_bytes()
    state.write_bytes(full[: len(full) // 2])
    dst = make_vm(tmp_path, accel, bios, "dst", restore=Restore(state, compression))
    dst.start(sup)
    with pytest.raises(SnapshotError, match=r"refused|corrupt|truncated"):
        restore(dst.connect(10), state, compression, sup=sup, deadline=30)
    assert dst.proc is not None and dst.proc.wait(5) != 0
    assert "load of migration failed" in dst.stderr_log.read_text()


def test_garbage_state_is_refused(tmp_path: Path, accel: str, bios: Path, sup: Supervisor) -> None:
    state = tmp_path / "state"
    state.write_bytes(os.urandom(1 << 20))
    dst = make_vm(tmp_path, accel, bios, "dst", restore=Restore(state, "zstd"))
    dst.start(sup)
    with pytest.raises(SnapshotError, match=r"refused|corrupt"):
        restore(dst.connect(10), state, "zstd", sup=sup, deadline=30)


def test_missing_state_is_refused(tmp_path: Path, accel: str, bios: Path, sup: Supervisor) -> None:
    dst = make_vm(tmp_path, accel, bios, "dst", restore=Restore(tmp_path / "nope", "zstd"))
    dst.start(sup)
    with pytest.raises(SnapshotError, match="missing or empty"):
        restore(dst.connect(10), tmp_path / "nope", "zstd", sup=sup, deadline=30)


@pytest.fixture(scope="module")
def big_random(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return os.urandom(160 << 20)


def test_guest_killed_mid_save(
    tmp_path: Path, accel: str, bios: Path, sup: Supervisor, big_random: bytes
) -> None:
    src = start_source(tmp_path, accel, bios, sup, big_random)
    assert src.proc is not None
    pid = src.proc.pid
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    state = tmp_path / "out" / "state"
    t0 = time.monotonic()
    with pytest.raises(SnapshotError, match=r"QEMU went away|failed") as info:
        save(src.client(), state, "gzip", sup=sup, deadline=60)  # gzip: ~5 s for 160 MiB
    assert time.monotonic() - t0 < 5
    assert "save" in str(info.value)
    assert src.proc.wait(1) == -signal.SIGKILL
    assert not state.exists()
    assert list(state.parent.iterdir()) == []  # temp file removed
    assert [pid for pid, _ in children_of(os.getpid())] == []  # compressor gone too
    assert processes_mentioning(str(tmp_path)) == []


def test_save_deadline(
    tmp_path: Path, accel: str, bios: Path, sup: Supervisor, big_random: bytes
) -> None:
    src = start_source(tmp_path, accel, bios, sup, big_random)
    t0 = time.monotonic()
    with pytest.raises(SnapshotError, match="deadline"):
        save(src.client(), tmp_path / "state", "gzip", sup=sup, deadline=0.5)
    assert time.monotonic() - t0 < 3
    assert not (tmp_path / "state").exists()
    assert src.proc is not None
    others = [pid for pid, _ in children_of(os.getpid()) if pid != src.proc.pid]
    assert others == []  # gzip killed


def test_restore_deadline(
    tmp_path: Path, accel: str, bios: Path, sup: Supervisor, big_random: bytes
) -> None:
    src = start_source(tmp_path, accel, bios, sup, big_random)
    state = tmp_path / "state"
    save(src.client(), state, "gzip", sup=sup, deadline=60)
    dst = make_vm(tmp_path, accel, bios, "dst", restore=Restore(state, "gzip"))
    dst.start(sup)
    with pytest.raises(SnapshotError, match="deadline"):
        restore(dst.connect(10), state, "gzip", sup=sup, deadline=0.1)
