"""Helpers shared by the runtime tests (imported as a plain module: pytest puts this
directory on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

from wingen.runtime.vm import VM, Restore, VMSpec

QEMU = os.environ.get("WINGEN_QEMU", "qemu-system-x86_64")
READY = "WINGEN-GUEST-READY"


def processes_mentioning(token: str) -> list[str]:
    """Command lines of live (non-zombie) processes whose argv mentions token."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token in cmd and state != "Z":
            found.append(f"{d.name}: {cmd}")
    return found


def make_vm(
    tmp_path: Path,
    accel: str,
    bios: Path,
    name: str,
    *,
    mib: int = 256,
    args: list[str] | None = None,
    restore: Restore | None = None,
    template: bool = False,
) -> VM:
    spec = VMSpec(
        name=name,
        memory_mib=mib,
        args=["-bios", str(bios), *(args or [])],
        restore=restore,
        template=template,
    )
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    return VM(spec, qemu=QEMU, accel=accel, rundir=run, logdir=tmp_path)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that does not reap (docker's PID 1)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, argv[0]) of live children of pid."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            exe = (d / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            out.append((int(d.name), exe))
    return out
