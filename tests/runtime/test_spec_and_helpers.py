"""Spec validation, sparse RAM-file helpers, process-group teardown (no QEMU needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from rthelpers import alive

from wingen.runtime.accel import TCG_SCALE, scaled
from wingen.runtime.firmware import BIOS_SIZE, bios_image
from wingen.runtime.sparse import punch_zero_holes, sparse_copy
from wingen.runtime.spec import SpecError, Tools, parse_spec
from wingen.runtime.supervise import Supervisor, tail, wait_until

GOOD: dict[str, Any] = {
    "accel": "tcg",
    "qemu": "/q",
    "switch": "vde.ctl",
    "vms": [
        {
            "name": "guest",
            "memory_mib": 1024,
            "args": ["-drive", "x"],
            "restore": {"from": "/s/state", "compression": "template"},
        },
        {"name": "controller", "memory_mib": 256},
    ],
    "steps": [
        {"wait_file": "xchg/x", "deadline": 600, "what": "ssh"},
        {"save": "guest", "to": "out/state", "compression": "zstd"},
        {"wait_exit": "controller"},
        {"wait_serial": "guest", "pattern": "READY"},
        {"quit": "guest"},
    ],
}


def test_good_spec() -> None:
    spec = parse_spec(GOOD)
    assert spec.accel == "tcg"
    assert spec.tcg_deadline_scale is None  # the runtime's own TCG_SCALE
    assert spec.vms[0].restore is not None and spec.vms[0].restore.compression == "template"
    assert [s.action for s in spec.steps] == [
        "wait_file",
        "save",
        "wait_exit",
        "wait_serial",
        "quit",
    ]
    assert spec.steps[2].deadline == 3600.0
    assert spec.tools == Tools()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accel": "fast"}, "spec.accel: 'fast' is not allowed"),
        ({"colour": 1}, "spec.colour: unknown field"),
        ({"vms": "x"}, "spec.vms: 'x' has the wrong type"),
        ({"vms": [{"name": "a b", "memory_mib": 64}]}, "spec.vms[0].name: 'a b' is not allowed"),
        (
            {"vms": [{"name": "a", "memory_mib": True}]},
            "spec.vms[0].memory_mib: True has the wrong",
        ),
        (
            {"vms": [{"name": "a", "memory_mib": 64}, {"name": "a", "memory_mib": 64}]},
            "duplicate VM names",
        ),
        (
            {
                "vms": [
                    {"name": "a", "memory_mib": 64, "restore": {"from": "x", "compression": "xz"}}
                ]
            },
            "spec.vms[0].restore.compression: 'xz' is not allowed",
        ),
        ({"steps": [{"wait_exit": "nobody"}]}, "spec.steps[0].wait_exit: no VM named 'nobody'"),
        ({"steps": [{"wait_exit": "guest", "save": "guest"}]}, "needs exactly one of"),
        ({"steps": [{"save": "guest"}]}, "spec.steps[0].to: missing"),
        ({"steps": [{"wait_serial": "guest", "pattern": "("}]}, "is not a regular expression"),
        ({"steps": [{"quit": "guest", "deadlin": 3}]}, "spec.steps[0].deadlin: unknown field"),
        ({"steps": [{"wait_tcp": "localhost"}]}, "spec.steps[0].wait_tcp: 'localhost' is not HOST"),
    ],
)
def test_bad_spec_names_field_and_value(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({**GOOD, **change})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_scaled_deadline() -> None:
    assert scaled(10, "tcg", 3) == 30
    assert scaled(10, "kvm", 3) == 10
    assert scaled(10, "tcg") == 10 * TCG_SCALE


def test_wait_until() -> None:
    t0 = time.monotonic()
    assert not wait_until(lambda: False, 0.2)
    assert 0.2 <= time.monotonic() - t0 < 0.5
    assert wait_until(lambda: True, 0)


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"".join(b"line %d\r\n" % i for i in range(100)) + b"\xff")
    assert tail(log, 3) == "line 98\nline 99\n\ufffd"
    assert tail(tmp_path / "missing") == ""


def test_firmware_layout() -> None:
    image = bios_image("hi")
    assert len(image) == BIOS_SIZE
    assert image[0xFFF0:0xFFF5] == b"\xea\x00\x00\x00\xf0"  # reset vector jumps to F000:0000


def test_punch_zero_holes_and_sparse_copy(tmp_path: Path) -> None:
    f = tmp_path / "ram"
    block = os.urandom(64 << 10)
    with f.open("wb") as out:
        out.write(block)
        out.write(bytes(8 << 20))  # allocated zeros
        out.write(block)
    assert f.stat().st_blocks * 512 >= 8 << 20
    before = f.read_bytes()
    punch_zero_holes(f)
    assert f.read_bytes() == before
    assert f.stat().st_blocks * 512 < 1 << 20
    g = tmp_path / "copy"
    sparse_copy(f, g)
    assert g.read_bytes() == before
    assert g.stat().st_blocks * 512 < 1 << 20


def test_supervisor_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    with Supervisor() as sup:
        proc = sup.spawn("sh", ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"])
        assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() != "", 5)
        grandchild = int(pidfile.read_text())
    assert proc.returncode == -signal.SIGTERM
    assert wait_until(lambda: not alive(grandchild), 2)


def test_supervisor_sigkills_a_process_ignoring_sigterm() -> None:
    with Supervisor() as sup:
        proc = sup.spawn("stubborn", ["sh", "-c", "trap '' TERM; sleep 300"])
        time.sleep(0.2)
        t0 = time.monotonic()
        assert sup.stop(proc, grace=0.3) == -signal.SIGKILL
        assert time.monotonic() - t0 < 2


def test_spawn_missing_program_is_a_stage_error() -> None:
    from wingen.runtime.supervise import StageError

    with Supervisor() as sup, pytest.raises(StageError, match="cannot start"):
        sup.spawn("nothing", ["/nonexistent/prog"])
    assert subprocess.run(["true"], check=False).returncode == 0
