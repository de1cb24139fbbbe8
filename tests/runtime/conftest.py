"""Helpers for runtime tests: the generated tiny guest, QEMU and process-table checks."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rthelpers import QEMU, READY, processes_mentioning

from wingen.runtime.accel import probe_accel
from wingen.runtime.firmware import write_bios
from wingen.runtime.supervise import Supervisor


@pytest.fixture(scope="session")
def accel() -> str:
    if shutil.which(QEMU) is None:
        pytest.fail(f"{QEMU} not installed (apt-get install qemu-system-x86)")
    return probe_accel(QEMU)


@pytest.fixture
def bios(tmp_path: Path) -> Path:
    return write_bios(tmp_path / "guest.bin", READY + "\r\n")


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    with Supervisor() as s:
        yield s
    assert processes_mentioning(str(tmp_path)) == []


@pytest.fixture(scope="session")
def old_qemu() -> str:
    """Debian bookworm's QEMU 7.2, unpacked into a cache dir (tests/runtime/old_qemu.sh)."""
    script = Path(__file__).with_name("old_qemu.sh")
    out = subprocess.run(["sh", str(script)], stdout=subprocess.PIPE, text=True, check=True)
    return out.stdout.strip()
