"""Where a VM stage ran, seen from outside: the user that owns its QEMU processes, and the root
directory they see. A sandbox's root is a bind mount of `<store dir>/<hash>-<drv name>.chroot`,
which names the derivation and the store, so the machine, that built it; an unsandboxed build
sees the host's `/` and runs in `/tmp/nix-build-<drv name>-<n>`."""

from __future__ import annotations

import pwd
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SANDBOX_ROOT = re.compile(r"(?P<store>/.*)/[0-9a-z]{32}-(?P<drv>[^/]+)\.drv\.chroot")
BUILD_DIR = re.compile(r"/nix-build-(?P<drv>[^/]+)\.drv-\d+$")


@dataclass(frozen=True)
class VmProcess:
    user: str
    root: str  # the source of the process's `/` mount, as /proc/<pid>/mountinfo gives it
    drv: str  # the name of the derivation whose build started it

    @property
    def store(self) -> str | None:
        """The store dir of the sandbox it ran in; None unsandboxed."""
        m = SANDBOX_ROOT.fullmatch(self.root)
        return m["store"] if m else None

    def describe(self) -> str:
        where = f"sandboxed in {self.store}" if self.store else f"unsandboxed (root {self.root})"
        return f"{self.user}, {where}"


def vm_processes(marker: str) -> set[VmProcess]:
    """Live QEMU processes started by builds of derivations whose names contain `marker`."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"qemu-system" not in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                continue
            uid = proc.stat().st_uid
            mounts = (proc / "mountinfo").read_text().splitlines()
            cwd = str((proc / "cwd").readlink())
        except OSError:
            continue
        # mountinfo fields: id, parent, dev, root, mount point, ...
        root = next((f[3] for f in map(str.split, mounts) if f[4] == "/"), "?")
        m = SANDBOX_ROOT.fullmatch(root) or BUILD_DIR.search(cwd)
        if m and marker in m["drv"]:
            found.add(VmProcess(pwd.getpwuid(uid).pw_name, root, m["drv"]))
    return found


def run_watching(
    cmd: list[str], env: dict[str, str], marker: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], set[VmProcess], int]:
    """Run cmd (stdout+stderr together) and sample, twice a second, the VM processes it starts;
    also the most derivations seen running VMs in one sample."""
    seen: set[VmProcess] = set()
    most = 0
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        while True:
            try:
                out, _ = proc.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                now = vm_processes(marker)
                seen |= now
                most = max(most, len({vm.drv for vm in now}))
                if time.monotonic() > deadline:
                    proc.kill()
                    raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out), seen, most
