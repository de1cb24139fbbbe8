"""What a user sees of a stage (issue 10 items 1-9): serial lines and heartbeat in the log, exact
failure reasons (a full disk, a QEMU that cannot start, a guest that dies mid-save), quit's own
budget, the probe retried."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rthelpers import READY, processes_mentioning
from test_stage_qemu import filled_vm, run, spec

from wingen.runtime import accel as accel_module
from wingen.runtime.firmware import write_bios
from wingen.runtime.logs import Follow
from wingen.runtime.qmp import QMPClient
from wingen.runtime.snapshot import save
from wingen.runtime.supervise import Supervisor

pytestmark = pytest.mark.qemu


def test_serial_lines_and_heartbeat_reach_the_log(tmp_path: Path) -> None:
    threading.Timer(2.0, (tmp_path / "done").touch).start()
    p = run(
        tmp_path,
        spec(tmp_path, [{"wait_file": "done", "deadline": 20, "what": "xchg"}], heartbeat=0.5),
    )
    assert p.returncode == 0, p.stderr
    assert f"[guest] {READY}" in p.stderr
    assert "still running [accel tcg]: step 1/1 wait_file done (xchg), deadline 20 s;" in p.stderr
    assert "in this step" in p.stderr


def test_serial_echo_is_rate_limited(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_text("".join(f"line {i}\r\n" for i in range(500)))
    f = Follow(log, "[vm] ", per_second=10)
    lines = f.lines()
    assert lines[0] == "[vm] line 0"
    assert len(lines) <= 51  # a burst of 5 s worth
    time.sleep(0.3)
    later = f.lines()  # once lines may flow again, it says how many were left out
    assert len(later) == 1 and later[0].startswith("[vm] (") and "lines not shown" in later[0]
    assert str(log) in later[0]


def test_failure_report_points_to_keep_failed(tmp_path: Path) -> None:
    p = run(tmp_path, spec(tmp_path, [{"wait_file": "never", "deadline": 0.3}]))
    assert p.returncode == 1
    assert "--keep-failed" in p.stderr


def test_qemu_that_dies_at_start_is_reported_at_once(tmp_path: Path) -> None:
    vm = {"name": "guest", "memory_mib": 64, "args": ["-no-such-option"]}
    t0 = time.monotonic()
    p = run(tmp_path, spec(tmp_path, [{"wait_exit": "guest", "deadline": 5}], vms=[vm]))
    took = time.monotonic() - t0
    assert p.returncode == 1
    line = next(x for x in p.stderr.splitlines() if "did not come up" in x)
    assert "invalid option" in line  # its stderr, in the reason itself
    assert took < 10, "not the whole QMP connect deadline (20 s)"


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_full_disk_during_save_names_the_compressor_error(tmp_path: Path, small_disk: Path) -> None:
    vm = filled_vm(tmp_path, 64, 8)
    steps = [
        {"wait_serial": "guest", "pattern": READY, "deadline": 10},
        {"save": "guest", "to": str(small_disk / "state"), "compression": "zstd"},
    ]
    p = run(tmp_path, spec(tmp_path, steps, vms=[vm]))
    assert p.returncode == 1
    reason = next(x for x in p.stderr.splitlines() if "stage failed" in x)
    assert "zstd failed (exit code" in reason and "No space left on device" in reason
    assert "Broken pipe" not in reason  # QEMU's own view stays in its stderr below
    assert list(small_disk.iterdir()) == []


def test_guest_dying_during_the_save_ends_the_stage(tmp_path: Path) -> None:
    """A suspend-stage failure: the guest's QEMU dies mid-save; the reason, nothing left."""
    vm = filled_vm(tmp_path, 256, 96)
    steps = [
        {"wait_serial": "guest", "pattern": READY, "deadline": 10},
        {"save": "guest", "to": "out/state", "compression": "gzip", "deadline": 120},
    ]

    def kill_qemu_when_saving() -> None:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if list((tmp_path / "out").glob(".state.tmp-*")):
                for line in processes_mentioning(str(tmp_path)):
                    if "qemu-system" in line and "-name guest" in line:
                        os.kill(int(line.split(":")[0]), 9)
                        return
            time.sleep(0.02)

    threading.Thread(target=kill_qemu_when_saving, daemon=True).start()
    p = run(tmp_path, spec(tmp_path, steps, vms=[vm]), timeout=120)
    assert p.returncode == 1
    assert "step 2/2 (save guest) failed" in p.stderr
    assert "save guest:" in p.stderr
    assert "killed by SIGKILL" in p.stderr  # the VM's status in the report
    assert not (tmp_path / "out" / "state").exists()


class FakeQEMU(threading.Thread):
    """A QMP peer whose migration completes after `migrate_s` and whose quit takes `quit_s`."""

    def __init__(self, sock: socket.socket, migrate_s: float, quit_s: float) -> None:
        super().__init__(daemon=True)
        self.sock, self.migrate_s, self.quit_s = sock, migrate_s, quit_s
        self.started = 0.0

    def reply(self, ident: str, value: Any) -> None:
        self.sock.sendall(json.dumps({"return": value, "id": ident}).encode() + b"\n")

    def run(self) -> None:
        buf = b""
        while True:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 4)
            for fd in fds:
                os.close(fd)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                cmd, ident = msg["execute"], msg["id"]
                if cmd == "migrate":
                    self.started = time.monotonic()
                if cmd == "query-migrate":
                    done = time.monotonic() - self.started >= self.migrate_s
                    self.reply(ident, {"status": "completed" if done else "active"})
                elif cmd == "quit":
                    time.sleep(self.quit_s)
                    self.reply(ident, {})
                    self.sock.close()
                    return
                else:
                    self.reply(ident, {})


def test_quit_has_its_own_budget(tmp_path: Path) -> None:
    """A save that completes near its deadline is kept: quit is not left the remainder."""
    ours, theirs = socket.socketpair()
    FakeQEMU(theirs, migrate_s=0.4, quit_s=0.3).start()
    with Supervisor() as sup:
        result = save(
            QMPClient(ours), tmp_path / "state", "none", sup=sup, deadline=0.5, quit_budget=3
        )
    assert result["save_s"] < 0.5
    assert (tmp_path / "state").exists()


def test_probe_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["no output from a test guest within 3 s", None])
    monkeypatch.setattr(accel_module, "probe_once", lambda _q, _d=3.0: next(answers))
    monkeypatch.setattr(accel_module.os, "access", lambda _p, _m: True)
    assert accel_module.probe_accel("qemu", attempts=3) == "kvm"


def test_kvm_required_but_tcg_is_said_prominently(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(accel_module, "probe_accel", lambda _q: "tcg")
    assert accel_module.resolve_accel("auto", "qemu", kvm_required=True) == "tcg"
    err = capsys.readouterr().err
    assert "required the kvm feature, but KVM cannot run a guest here" in err
    assert "every deadline x3" in err
    assert accel_module.resolve_accel("auto", "qemu") == "tcg"
    assert "required" not in capsys.readouterr().err


def test_failing_stage_saves_a_screenshot(tmp_path: Path) -> None:
    """Issue 8 item 18: a QMP screendump (PNG) beside the serial logs, its path printed."""
    bios = write_bios(tmp_path / "guest.bin", READY + "\r\n")
    vms = [
        {"name": "guest", "memory_mib": 64, "args": ["-bios", str(bios)], "vga": True},
        {"name": "headless", "memory_mib": 64, "args": ["-bios", str(bios)]},
    ]
    steps = [
        {"wait_serial": "guest", "pattern": READY, "deadline": 10},
        {"wait_file": "never", "deadline": 0.3},
    ]
    p = run(tmp_path, spec(tmp_path, steps, vms=vms))
    assert p.returncode == 1
    png = tmp_path / "wingen-guest.screen.png"
    assert f"VM guest: screen at the failure: {png}" in p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "VM headless: no screenshot" in p.stderr
