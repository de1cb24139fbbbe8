"""`python3 -m wingen.runtime stage` against real QEMU: success, every wait's deadline, reasons
with serial lines, signals, and no process left behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rthelpers import QEMU, READY, alive, children_of, processes_mentioning

from wingen.runtime.firmware import write_bios

pytestmark = pytest.mark.qemu

GENERATOR = Path(__file__).resolve().parents[2] / "generator"


def spec(
    tmp_path: Path,
    steps: list[dict[str, Any]],
    *,
    vms: list[dict[str, Any]] | None = None,
    **top: Any,
) -> Path:
    bios = write_bios(tmp_path / "guest.bin", READY + "\r\n")
    doc = {
        "accel": "tcg",
        "tcg_deadline_scale": 1,
        "qemu": QEMU,
        "vms": vms or [{"name": "guest", "memory_mib": 64, "args": ["-bios", str(bios)]}],
        "steps": steps,
        **top,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    return path


def run(tmp_path: Path, spec_path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(GENERATOR)}
    proc = subprocess.run(
        [sys.executable, "-m", "wingen.runtime", "stage", str(spec_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert processes_mentioning(str(tmp_path)) == [], proc.stderr
    return proc


def test_save_then_restore_over_a_switch(tmp_path: Path) -> None:
    net = ["-netdev", "vde,id=n0,sock=vde.ctl", "-device", "virtio-net-pci,netdev=n0"]
    bios = write_bios(tmp_path / "guest.bin", READY + "\r\n")
    vm: dict[str, Any] = {"name": "guest", "memory_mib": 64, "args": ["-bios", str(bios), *net]}
    s = spec(
        tmp_path,
        [
            {"wait_serial": "guest", "pattern": READY, "deadline": 10, "what": "boot"},
            {"save": "guest", "to": "out/state", "compression": "zstd", "deadline": 30},
        ],
        vms=[vm],
        switch="vde.ctl",
    )
    p = run(tmp_path, s)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / "state").stat().st_size > 0
    meta = json.loads((tmp_path / "out" / "state.json").read_text())
    flags = meta.pop("host_cpu_flags")
    # The probe's answer, for a revive by the same binary (qemu_caps.record).
    assert meta.pop("qemu_caps")["binary"][0] == str(Path(shutil.which(QEMU) or "").resolve())
    assert meta == {
        "accel": "tcg",
        "memory_mib": 64,
        "compression": "zstd",
        "cpu_model": "max",
        "cpus": 1,
        "machine_type": "",
        "firmware": False,
        "drives": [],
        "nics": [],
    }
    assert isinstance(flags, list)

    vm["restore"] = {"from": "out/state", "compression": "zstd"}
    threading.Timer(0.5, (tmp_path / "xchg-done").touch).start()
    s = spec(
        tmp_path,
        [{"wait_file": "xchg-done", "deadline": 20}, {"quit": "guest"}],
        vms=[vm],
        switch="vde.ctl",
    )
    p = run(tmp_path, s)
    assert p.returncode == 0, p.stderr
    assert "restore guest: loaded" in p.stderr


def test_two_vms_saved_together_revive_together_and_take_a_signal(tmp_path: Path) -> None:
    """The base's pair (guest and controller): paused together, saved each to its own state,
    loaded at the same time and continued together; the runtime's line on the signal port
    reaches the revived VM (this firmware copies COM2 to COM1)."""
    echo = write_bios(tmp_path / "echo.bin", READY + "\r\n", end="echo")
    halt = write_bios(tmp_path / "halt.bin", READY + "\r\n")
    vms = [
        {"name": "a", "memory_mib": 32, "args": ["-bios", str(echo)], "signal": True},
        {"name": "b", "memory_mib": 32, "args": ["-bios", str(halt)]},
    ]
    save = [
        {"wait_serial": "a", "pattern": READY, "deadline": 10},
        {"wait_serial": "b", "pattern": READY, "deadline": 10},
        {"pause": "b"},
        {"save": "a", "to": "out/a", "compression": "zstd", "deadline": 30},
        {"save": "b", "to": "out/b", "compression": "zstd", "deadline": 30},
    ]
    p = run(tmp_path, spec(tmp_path, save, vms=vms))
    assert p.returncode == 0, p.stderr
    for vm in vms:
        vm["restore"] = {"from": f"out/{vm['name']}", "compression": "zstd"}
    revive = [
        {"signal": "a"},
        {"wait_serial": "a", "pattern": "^go$", "deadline": 10, "what": "the signal echoed"},
    ]
    p = run(tmp_path, spec(tmp_path, revive, vms=vms))
    assert p.returncode == 0, p.stderr
    assert re.search(r"revive: a, b running after \d+\.\d+ s", p.stderr), p.stderr
    # Nothing echoed before the signal: the revived console holds the line and nothing else.
    assert (tmp_path / "wingen-a.serial.log").read_text().split() == ["go"]


def test_signal_to_a_vm_without_a_signal_port_fails_with_the_reason(tmp_path: Path) -> None:
    p = run(tmp_path, spec(tmp_path, [{"signal": "guest"}]))
    assert p.returncode == 1
    assert "step 1/1 (signal guest) failed: VM guest: cannot write to its signal port" in p.stderr


def test_template_stage_round_trip_and_mismatch(tmp_path: Path) -> None:
    bios = write_bios(tmp_path / "guest.bin", READY + "\r\n")
    vm: dict[str, Any] = {
        "name": "guest",
        "memory_mib": 128,
        "args": ["-bios", str(bios)],
        "template": True,
    }
    p = run(
        tmp_path,
        spec(
            tmp_path,
            [
                {"wait_serial": "guest", "pattern": READY, "deadline": 10},
                {"save": "guest", "to": "out/state", "compression": "template"},
            ],
            vms=[vm],
        ),
    )
    assert p.returncode == 0, p.stderr
    ram = tmp_path / "out" / "state.ram"
    assert ram.stat().st_size == 128 << 20
    assert ram.stat().st_blocks * 512 < 1 << 20
    assert not (tmp_path / "wingen-guest.ram").exists()  # moved into the output

    del vm["template"]
    vm["restore"] = {"from": "out/state", "compression": "template"}
    p = run(tmp_path, spec(tmp_path, [{"quit": "guest"}], vms=[vm]))
    assert p.returncode == 0, p.stderr
    vm["memory_mib"] = 256
    p = run(tmp_path, spec(tmp_path, [{"quit": "guest"}], vms=[vm]))
    assert p.returncode == 1
    assert "saved with memory_mib=128 but is revived with memory_mib=256" in p.stderr


@pytest.mark.parametrize("spin", [1 << 20, 0])
def test_wait_exit_of_a_guest_that_powers_off(tmp_path: Path, spin: int) -> None:
    """With no spin, QEMU may well be gone before the QMP handshake ends (on a loaded host
    surely): a guest that powers off at once is still a guest that powered off."""
    bios = write_bios(tmp_path / "off.bin", "bye\r\n", spin=spin, end="reset")
    s = spec(
        tmp_path,
        [{"wait_exit": "guest", "deadline": 20}],
        vms=[{"name": "guest", "memory_mib": 64, "args": ["-bios", str(bios)]}],
    )
    p = run(tmp_path, s)
    assert p.returncode == 0, p.stderr
    assert "did not come up" not in p.stderr


def test_wait_file_deadline_gives_reason_and_serial_lines(tmp_path: Path) -> None:
    t0 = time.monotonic()
    p = run(
        tmp_path,
        spec(
            tmp_path,
            [{"wait_file": "xchg/suspend-now", "deadline": 0.5, "what": "guest SSH reachable"}],
        ),
    )
    assert time.monotonic() - t0 < 15
    assert p.returncode == 1
    assert "step 1/1 (wait_file xchg/suspend-now (guest SSH reachable)) failed" in p.stderr
    assert "did not appear within 0.5 s" in p.stderr
    assert READY in p.stderr  # the last serial lines
    assert "QEMU stderr" in p.stderr


def test_deadlines_scale_under_tcg(tmp_path: Path) -> None:
    p = run(
        tmp_path, spec(tmp_path, [{"wait_file": "never", "deadline": 0.2}], tcg_deadline_scale=3)
    )
    assert p.returncode == 1
    assert "0.6 s (0.2 s x 3 under TCG)" in p.stderr


def test_wait_serial_deadline(tmp_path: Path) -> None:
    p = run(
        tmp_path,
        spec(tmp_path, [{"wait_serial": "guest", "pattern": "NEVER-PRINTED", "deadline": 0.5}]),
    )
    assert p.returncode == 1
    assert "'NEVER-PRINTED' not on guest's serial console within 0.5 s" in p.stderr


def test_wait_serial_ended_by_a_failing_vm_gives_its_reason(tmp_path: Path) -> None:
    """A base's controller that fails before it is ready (its preparing command failed) ends
    the wait at once, with the reason it wrote (here written beforehand: this firmware cannot)."""
    bios = write_bios(tmp_path / "x.bin", "preparing\r\n", spin=1 << 24, end="debug-exit")
    reason = tmp_path / "failure"
    reason.write_text("the preparing command in the guest exited with code 4\n")
    vm = {
        "name": "controller",
        "memory_mib": 64,
        "args": ["-bios", str(bios)],
        "debug_exit": True,
        "failure_file": str(reason),
    }
    step = {"wait_serial": "controller", "pattern": "ready to be saved", "deadline": 60}
    p = run(tmp_path, spec(tmp_path, [step], vms=[vm]))
    assert p.returncode == 1
    assert (
        "VM controller failed: the preparing command in the guest exited with code 4 "
        "(QEMU exit code 3), before it printed 'ready to be saved'"
    ) in p.stderr, p.stderr


def test_wait_exit_deadline(tmp_path: Path) -> None:
    p = run(tmp_path, spec(tmp_path, [{"wait_exit": "guest", "deadline": 0.5, "what": "build"}]))
    assert p.returncode == 1
    assert "VM guest did not exit within 0.5 s" in p.stderr


def filled_vm(tmp_path: Path, memory_mib: int, fill_mib: int) -> dict[str, Any]:
    """A guest whose RAM holds fill_mib of random bytes (slow to compress, big to save)."""
    fill = tmp_path / "fill.bin"
    fill.write_bytes(os.urandom(fill_mib << 20))
    bios = write_bios(tmp_path / "guest.bin", READY + "\r\n")
    return {
        "name": "guest",
        "memory_mib": memory_mib,
        "args": ["-bios", str(bios), "-device", f"loader,file={fill},addr=0x1000000,force-raw=on"],
    }


def test_save_deadline_in_a_stage(tmp_path: Path) -> None:
    vm = filled_vm(tmp_path, 256, 96)
    p = run(
        tmp_path,
        spec(
            tmp_path,
            [
                {"wait_serial": "guest", "pattern": READY, "deadline": 10},
                {"save": "guest", "to": "state", "compression": "gzip", "deadline": 0.3},
            ],
            vms=[vm],
        ),
    )
    assert p.returncode == 1
    assert "deadline: migration still active" in p.stderr
    assert not (tmp_path / "state").exists()


def test_restore_deadline_in_a_stage(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_bytes(b"")
    bios = write_bios(tmp_path / "guest.bin", READY + "\r\n")
    vm = {
        "name": "guest",
        "memory_mib": 64,
        "args": ["-bios", str(bios)],
        "restore": {"from": str(state), "compression": "none"},
    }
    p = run(tmp_path, spec(tmp_path, [{"quit": "guest"}], vms=[vm]))
    assert p.returncode == 1
    assert "missing or empty" in p.stderr


def test_vm_failing_during_a_wait_ends_it_early(tmp_path: Path) -> None:
    bios = write_bios(tmp_path / "x.bin", "crash\r\n", spin=1 << 26, end="debug-exit")
    vm = {
        "name": "guest",
        "memory_mib": 64,
        "args": ["-bios", str(bios), "-device", "isa-debug-exit,iobase=0xf4,iosize=4"],
    }
    t0 = time.monotonic()
    p = run(tmp_path, spec(tmp_path, [{"wait_file": "never", "deadline": 60}], vms=[vm]))
    assert time.monotonic() - t0 < 15
    assert p.returncode == 1
    # (on a loaded machine QEMU may even be gone before QMP is up: still its exit code)
    assert "VM guest exited (exit code 3) while waiting" in p.stderr or (
        "QEMU did not come up (exit code 3)" in p.stderr
    )
    assert "crash" in p.stderr


def test_qemu_that_cannot_start(tmp_path: Path) -> None:
    vm = {"name": "guest", "memory_mib": 64, "args": ["-no-such-option"]}
    p = run(tmp_path, spec(tmp_path, [{"wait_exit": "guest", "deadline": 5}], vms=[vm]))
    assert p.returncode == 1
    assert "invalid option" in p.stderr


def start_waiting_stage(tmp_path: Path, stderr: int) -> subprocess.Popen[str]:
    """A stage (a guest and a switch) that waits forever, returned once its guest is up."""
    s = spec(tmp_path, [{"wait_file": "never", "deadline": 600}], switch="vde.ctl")
    env = {**os.environ, "PYTHONPATH": str(GENERATOR)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wingen.runtime", "stage", str(s)],
        cwd=tmp_path,
        env=env,
        stderr=stderr,
        text=True,
    )
    log = tmp_path / "wingen-guest.serial.log"
    end = time.monotonic() + 20
    while READY not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < end
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_tears_everything_down(tmp_path: Path, sig: signal.Signals) -> None:
    proc = start_waiting_stage(tmp_path, subprocess.PIPE)
    kids = children_of(proc.pid)
    assert sorted(Path(exe).name for _, exe in kids) == [Path(QEMU).name, "vde_switch"]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + sig, err
    assert f"interrupted by {sig.name}" in err
    assert processes_mentioning(str(tmp_path)) == []
    assert [pid for pid, _ in kids if alive(pid)] == []


def test_sigkill_of_the_runtime_leaves_nothing(tmp_path: Path) -> None:
    proc = start_waiting_stage(tmp_path, subprocess.DEVNULL)
    kids = children_of(proc.pid)
    assert len(kids) == 2  # QEMU and the switch
    proc.kill()
    proc.wait()
    end = time.monotonic() + 5
    while any(alive(pid) for pid, _ in kids) and time.monotonic() < end:
        time.sleep(0.1)
    assert [pid for pid, _ in kids if alive(pid)] == []
    assert processes_mentioning(str(tmp_path)) == []


def test_bad_spec_is_exit_2_with_one_line(tmp_path: Path) -> None:
    s = tmp_path / "spec.json"
    s.write_text(
        json.dumps({"vms": [{"name": "g", "memory_mib": 64}], "steps": [{"wait_exit": "nope"}]})
    )
    p = run(tmp_path, s)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0
    assert "spec.steps[0].wait_exit: no VM named 'nope'" in p.stderr


def test_switch_that_cannot_start(tmp_path: Path) -> None:
    p = run(tmp_path, spec(tmp_path, [{"quit": "guest"}], switch="/nonexistent/dir/vde.ctl"))
    assert p.returncode == 1
    assert "vde_switch" in p.stderr
    assert "exited" in p.stderr


def test_wait_tcp(tmp_path: Path) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Timer(0.5, listener.listen).start()
    try:
        p = run(tmp_path, spec(tmp_path, [{"wait_tcp": f"127.0.0.1:{port}", "deadline": 10}]))
        assert p.returncode == 0, p.stderr
    finally:
        listener.close()
    p = run(tmp_path, spec(tmp_path, [{"wait_tcp": f"127.0.0.1:{port}", "deadline": 0.5}]))
    assert p.returncode == 1
    assert f"nothing accepted connections on 127.0.0.1:{port} within 0.5 s" in p.stderr


def test_cpu_model_recorded_checked_and_refused(tmp_path: Path) -> None:
    """vm.cpu_model: recorded with the host's CPU flags; a revive with another model, or on a
    host (here: TCG) that cannot provide the model, is refused in one line."""
    bios = write_bios(tmp_path / "guest.bin", READY + "\r\n")
    vm: dict[str, Any] = {
        "name": "guest",
        "memory_mib": 64,
        "args": ["-bios", str(bios)],
        "cpu_model": "Nehalem-v1",
    }
    steps = [
        {"wait_serial": "guest", "pattern": READY, "deadline": 10},
        {"save": "guest", "to": "out/state", "compression": "none"},
    ]
    p = run(tmp_path, spec(tmp_path, steps, vms=[vm]))
    assert p.returncode == 0, p.stderr
    meta = json.loads((tmp_path / "out" / "state.json").read_text())
    assert meta["cpu_model"] == "Nehalem-v1"
    assert "sse2" in meta["host_cpu_flags"]

    revive = {
        **vm,
        "cpu_model": "qemu64-v1",
        "restore": {"from": "out/state", "compression": "none"},
    }
    p = run(tmp_path, spec(tmp_path, [{"quit": "guest"}], vms=[revive]))
    assert p.returncode == 1
    assert "saved with cpu_model='Nehalem-v1' but is revived with cpu_model='qemu64-v1'" in p.stderr

    haswell = {**vm, "cpu_model": "Haswell-v1"}  # TCG lacks some of its features (rtm, hle, ...)
    p = run(tmp_path, spec(tmp_path, [{"quit": "guest"}], vms=[haswell]))
    assert p.returncode == 1
    line = next(x for x in p.stderr.splitlines() if "cannot provide" in x)
    assert "this host cannot provide CPU model 'Haswell-v1' under tcg (it lacks " in line
    assert "set vm.cpu_model" in line
