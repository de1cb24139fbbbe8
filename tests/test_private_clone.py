"""The README's test command from a clone no other user can read (a 0700 directory, like a home):
the tests that run a child as another user (nixbld1) must copy what it needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AS_ANOTHER_USER = "tests/runtime/test_template_ram_qemu.py"

pytestmark = pytest.mark.qemu


def private_copy(dest: Path) -> None:
    """The checkout's tracked files as they are now, written with umask 077 (files 0600)."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    old = os.umask(0o077)
    try:
        for name in filter(None, files):
            src = ROOT / os.fsdecode(name)
            if src.is_file():
                (dest / src.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest / src.relative_to(ROOT))
    finally:
        os.umask(old)


def test_tests_acting_as_another_user_pass_from_a_0700_clone() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests run a child as nixbld1: run them as root (CI does)")
    top = Path(tempfile.mkdtemp())  # 0700, owned by root
    try:
        assert top.stat().st_mode & 0o777 == 0o700
        clone = top / "wingen"
        private_copy(clone)
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", AS_ANOTHER_USER],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert " passed" in run.stdout and "failed" not in run.stdout
    finally:
        shutil.rmtree(top)
