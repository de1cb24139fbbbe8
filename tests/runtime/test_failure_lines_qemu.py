"""The serial-line contract (runtime/contract.py) against real QEMU: a guest's failure line ends
any wait within seconds with its reason, whether the guest halts or powers off; an install-like
wait_exit succeeds only on the guest's success line; text that merely contains the prefix, or a
line that only starts to, is not taken for a failure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_stage_qemu import run, spec

from wingen.runtime.contract import FAILED, INSTALL_DONE, line_pattern
from wingen.runtime.firmware import write_bios

pytestmark = pytest.mark.qemu


def guest(tmp_path: Path, text: str, end: str = "halt") -> list[dict[str, object]]:
    """A guest that prints text, then halts, or powers off a while later (after QMP is up)."""
    spin = 1 << 26 if end == "reset" else 0
    bios = write_bios(tmp_path / "g.bin", text, spin=spin, end=end)
    return [{"name": "guest", "memory_mib": 64, "args": ["-bios", str(bios)]}]


def test_a_failure_line_ends_a_long_wait_at_once_with_its_reason(tmp_path: Path) -> None:
    vms = guest(tmp_path, f"booting\r\n{FAILED} mke2fs failed on /dev/vda\r\n")  # then halts
    t0 = time.monotonic()
    p = run(tmp_path, spec(tmp_path, [{"wait_file": "never", "deadline": 300}], vms=vms))
    assert time.monotonic() - t0 < 20
    assert p.returncode == 1
    assert "VM guest failed: mke2fs failed on /dev/vda" in p.stderr, p.stderr


def test_a_guest_that_fails_and_powers_off_fails_its_wait_exit(tmp_path: Path) -> None:
    vms = guest(tmp_path, f"{FAILED} cannot mount the new filesystem\r\n", end="reset")
    step = {"wait_exit": "guest", "deadline": 60, "pattern": line_pattern(INSTALL_DONE)}
    p = run(tmp_path, spec(tmp_path, [step], vms=vms))
    assert p.returncode == 1
    assert "VM guest failed: cannot mount the new filesystem" in p.stderr, p.stderr


def test_a_bare_power_off_is_no_install(tmp_path: Path) -> None:
    vms = guest(tmp_path, "installing\r\n", end="reset")
    step = {"wait_exit": "guest", "deadline": 60, "pattern": line_pattern(INSTALL_DONE),
            "what": "the installer"}  # fmt: skip
    p = run(tmp_path, spec(tmp_path, [step], vms=vms))
    assert p.returncode == 1
    assert "VM guest powered off without printing" in p.stderr, p.stderr
    assert "the sign that the installer succeeded" in p.stderr


def test_the_success_line_makes_the_power_off_an_install(tmp_path: Path) -> None:
    vms = guest(tmp_path, f"installing\r\n{INSTALL_DONE}\r\n", end="reset")
    step = {"wait_exit": "guest", "deadline": 60, "pattern": line_pattern(INSTALL_DONE)}
    p = run(tmp_path, spec(tmp_path, [step], vms=vms))
    assert p.returncode == 0, p.stderr


def test_the_prefix_inside_a_line_or_a_near_miss_is_not_a_failure(tmp_path: Path) -> None:
    noise = (
        f"[ 1.0] audit: echo {FAILED} in a kernel message\r\n"
        f"{FAILED[:-1]} almost\r\n"
        f"{INSTALL_DONE}-NOT\r\n"
    )
    vms = guest(tmp_path, noise, end="reset")
    step = {"wait_exit": "guest", "deadline": 60, "pattern": line_pattern(INSTALL_DONE)}
    p = run(tmp_path, spec(tmp_path, [step], vms=vms))
    assert p.returncode == 1
    assert "VM guest failed" not in p.stderr, p.stderr
    assert "powered off without printing" in p.stderr, p.stderr


def test_the_reason_is_the_last_line_of_the_log(tmp_path: Path) -> None:
    """`nix build` shows a failed build's last lines: the report goes above, the reason last."""
    vms = guest(tmp_path, f"{FAILED} mke2fs failed on /dev/vda\r\n")
    p = run(tmp_path, spec(tmp_path, [{"wait_file": "never", "deadline": 300}], vms=vms))
    last = p.stderr.rstrip("\n").splitlines()[-1]
    assert "failed" in last and last.endswith("VM guest failed: mke2fs failed on /dev/vda"), last
    assert "last 20 serial lines" in p.stderr.split(last)[0]  # the report, above it
