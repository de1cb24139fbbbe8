"""Pick the accelerator: KVM only if a tiny guest really runs under it, else TCG."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from .firmware import write_bios
from .supervise import Supervisor, log

# The probe's CPU: the host's own, as that is what a nested or broken KVM fails on.
PROBE_ARGS = ["-accel", "kvm", "-cpu", "host"]
# A VM's CPU when its spec names none.
DEFAULT_CPU = {"kvm": "host", "tcg": "max"}

PROBE_MARK = "WINGEN-KVM-OK"
# Every deadline and fixed wait is this much longer under TCG (emulation is that much slower).
TCG_SCALE = 3.0


def scaled(seconds: float, accel: str, tcg_scale: float | None = None) -> float:
    """seconds, stretched under TCG by tcg_scale (default TCG_SCALE)."""
    if accel != "tcg":
        return seconds
    return seconds * (TCG_SCALE if tcg_scale is None else tcg_scale)


def resolve_accel(
    requested: str, qemu: str, saved: str | None = None, *, kvm_required: bool = False
) -> str:
    """The accelerator a stage runs under: the one asked for; for "auto", the one a revived
    snapshot was saved under (its CPU state revives under no other), else what the probe finds.

    A stage that required the `kvm` system feature but finds KVM unusable runs under TCG, and
    says so in a banner.  It does not fail: Nix advertises `kvm` whenever /dev/kvm exists, also
    where it cannot run a guest (a nested or broken KVM), and there TCG is the only way to
    build at all; every deadline is scaled, so the stage still ends in bounded time."""
    if requested != "auto":
        return requested
    if saved is not None:
        log(f"accel: {saved}, as the snapshot was saved under it")
        return saved
    accel = probe_accel(qemu)
    if accel == "tcg" and kvm_required:
        rule = "*" * 78
        log(rule)
        log("accel: this build required the kvm feature, but KVM cannot run a guest here:")
        log(f"accel: running under TCG (emulation), every deadline x{TCG_SCALE:g}.")
        log('accel: fix /dev/kvm on this builder, or set vm.acceleration = "tcg".')
        log(rule)
    return accel


def probe_accel(qemu: str, deadline: float = 3.0, attempts: int = 3) -> str:
    """probe_once, retried: one slow moment (a loaded host) must not decide an hours-long
    stage."""
    why: str | None = "/dev/kvm not usable"
    for attempt in range(1, attempts + 1):
        why = probe_once(qemu, deadline)
        if why is None:
            return "kvm"
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            break  # no KVM at all: nothing to retry
        if attempt < attempts:
            log(f"accel: probe {attempt}/{attempts} found no working KVM, trying again")
            time.sleep(0.5)
    log(f"accel: kvm unusable ({why}), using tcg")
    return "tcg"


def probe_once(qemu: str, deadline: float = 3.0) -> str | None:
    """None if a generated guest prints its marker under -accel kvm within deadline, else why
    not.

    /dev/kvm existing is not enough: under a nested PVM host QEMU may abort on -cpu host,
    and guest code crawls (a 64M-iteration loop takes > 30 s there, 0.05 s under real KVM,
    0.25 s under TCG), so the probe must finish a busy loop within the deadline.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm not usable"
    with tempfile.TemporaryDirectory(prefix="wingen-probe-") as tmp:
        d = Path(tmp)
        bios = write_bios(d / "probe.bin", "", PROBE_MARK + "\n", spin=64 << 20)
        serial = d / "serial.log"
        argv = [
            qemu,
            *PROBE_ARGS,
            "-bios",
            str(bios),
            "-m",
            "16",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-chardev",
            f"file,id=ser0,path={serial}",
            "-serial",
            "chardev:ser0",
        ]
        start = time.monotonic()
        with Supervisor() as sup, (d / "stderr").open("wb") as err:
            proc = sup.spawn("kvm probe", argv, stderr=err)
            while time.monotonic() - start < deadline:
                if serial.exists() and PROBE_MARK in serial.read_text("latin-1"):
                    log(f"accel: kvm works ({time.monotonic() - start:.2f} s), using kvm")
                    return None
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
            try:
                code = proc.wait(0)
                why = f"QEMU exited ({code}): {(d / 'stderr').read_text('latin-1')[-300:]}"
            except subprocess.TimeoutExpired:
                why = f"no output from a test guest within {deadline:g} s"
        return why.strip()
