"""The acceleration probe: answers within its deadline and leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rthelpers import QEMU, processes_mentioning

from wingen.runtime.accel import probe_accel

pytestmark = pytest.mark.qemu


def test_probe_deadline_fires_and_cleans_up() -> None:
    t0 = time.monotonic()
    answer = probe_accel(QEMU, deadline=0.5)
    assert answer in ("kvm", "tcg")
    assert time.monotonic() - t0 < 3
    assert processes_mentioning("wingen-probe-") == []


def test_probe_cli_prints_one_word() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "generator")}
    p = subprocess.run(
        [sys.executable, "-m", "wingen.runtime", "probe-accel", "--qemu", QEMU],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    )
    assert p.stdout in ("kvm\n", "tcg\n")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert p.stdout == "tcg\n"
