"""`save` and `restore` subcommands on a QEMU started by someone else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rthelpers import QEMU, processes_mentioning

from wingen.runtime.firmware import write_bios
from wingen.runtime.qmp import QMPClient

pytestmark = pytest.mark.qemu

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "generator")}


def qemu(tmp_path: Path, name: str, *extra: str) -> subprocess.Popen[bytes]:
    bios = write_bios(tmp_path / "g.bin", "hello\r\n")
    return subprocess.Popen(
        [
            QEMU,
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "128",
            "-bios",
            str(bios),
            "-display",
            "none",
            "-nodefaults",
            "-qmp",
            f"unix:{tmp_path / name},server=on,wait=off",
            *extra,
        ],
        stderr=subprocess.PIPE,
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wingen.runtime", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_save_and_restore_subcommands(tmp_path: Path) -> None:
    src = qemu(tmp_path, "src.qmp")
    state = tmp_path / "state.zst"
    p = cli("save", "--qmp", str(tmp_path / "src.qmp"), "--to", str(state))
    assert p.returncode == 0, p.stderr
    assert src.wait(10) == 0  # save quits QEMU
    assert state.stat().st_size > 0

    dst = qemu(tmp_path, "dst.qmp", "-incoming", "defer")
    try:
        p = cli("restore", "--qmp", str(tmp_path / "dst.qmp"), "--from", str(state))
        assert p.returncode == 0, p.stderr
        c = QMPClient.connect(str(tmp_path / "dst.qmp"))
        assert c.execute("query-status")["status"] == "running"
        c.execute("quit")
        c.close()
        assert dst.wait(10) == 0
    finally:
        dst.kill()
        dst.wait()
    assert processes_mentioning(str(tmp_path)) == []


def test_restore_subcommand_refuses_a_truncated_file(tmp_path: Path) -> None:
    state = tmp_path / "state.zst"
    state.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 100)  # a zstd magic, then nonsense
    dst = qemu(tmp_path, "dst.qmp", "-incoming", "defer")
    try:
        p = cli("restore", "--qmp", str(tmp_path / "dst.qmp"), "--from", str(state))
        assert p.returncode == 1
        assert "corrupt or truncated" in p.stderr or "refused" in p.stderr
    finally:
        dst.kill()
        dst.wait()
