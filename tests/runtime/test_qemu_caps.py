"""Probe real QEMU binaries over QMP: the installed one (10.x) and Debian's 7.2 (old_qemu.sh)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from rthelpers import QEMU, processes_mentioning

from wingen.runtime import qemu_caps
from wingen.runtime.qemu_caps import CapsError, probe_qemu

pytestmark = pytest.mark.qemu


def version_of(qemu: str) -> tuple[int, ...]:
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
    assert found, out
    return tuple(int(x) for x in found.groups())


def test_installed_qemu_has_what_the_fast_paths_need() -> None:
    caps = probe_qemu(QEMU)
    assert caps.version == version_of(QEMU)
    assert caps.version >= (9, 0, 0)  # CI installs 10.x from bookworm-backports
    assert caps.readonly_ram_file
    assert caps.mapped_ram
    assert caps.ignore_shared
    assert {"readonly", "rom", "share", "mem-path"} <= caps.file_backend
    assert caps.describe().startswith(f"QEMU {'.'.join(map(str, caps.version))}:")


def test_qemu_7_2_has_neither(old_qemu: str) -> None:
    caps = probe_qemu(old_qemu)
    assert caps.version[:2] == (7, 2)
    # 7.2 knows readonly (a read-only guest RAM, for NVDIMMs) but not rom: no templating
    assert "readonly" in caps.file_backend
    assert "rom" not in caps.file_backend
    assert not caps.readonly_ram_file
    assert not caps.mapped_ram
    assert caps.ignore_shared  # since 4.0: template saves work on every QEMU we support
    assert "copies the RAM file" in caps.describe()


def test_probe_is_cached_per_binary(tmp_path: Path) -> None:
    first = probe_qemu(QEMU)
    t0 = time.monotonic()
    assert probe_qemu(QEMU) is first
    assert time.monotonic() - t0 < 0.01  # no second QEMU started


def test_probe_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu_caps, "_CACHE", {})
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    probe_qemu(QEMU)
    assert processes_mentioning(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []


def test_missing_binary_is_named(tmp_path: Path) -> None:
    with pytest.raises(CapsError, match=r"cannot probe QEMU: '.*nope' is not an executable"):
        probe_qemu(str(tmp_path / "nope"))


def test_not_a_qemu_fails_within_the_deadline(tmp_path: Path) -> None:
    fake = tmp_path / "qemu-system-x86_64"
    fake.write_text("#!/bin/sh\necho 'this is not QEMU' >&2\nexit 3\n")
    fake.chmod(0o755)
    t0 = time.monotonic()
    with pytest.raises(CapsError, match=r"exit code 3; this is not QEMU"):
        probe_qemu(str(fake), deadline=1.0)
    assert time.monotonic() - t0 < 3


def test_a_recorded_probe_answers_for_its_own_binary_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save keeps the probe beside the state; a revive by the same binary starts no probe."""
    caps = probe_qemu(QEMU)
    rec = qemu_caps.record(QEMU, caps)
    monkeypatch.setattr(qemu_caps, "_CACHE", {})
    monkeypatch.setattr(qemu_caps, "_probe_binary", lambda *_: pytest.fail("probed anyway"))
    assert probe_qemu(QEMU, known=rec) == caps
    # Another binary (a copy: other inode) is probed, whatever the record says.
    other = tmp_path / "qemu-copy"
    other.write_bytes(Path(qemu_caps.binary_key(QEMU)[0]).read_bytes())
    other.chmod(0o755)
    assert qemu_caps.from_record(str(other), rec) is None
    assert qemu_caps.from_record(QEMU, {"binary": rec["binary"]}) is None  # a torn record
