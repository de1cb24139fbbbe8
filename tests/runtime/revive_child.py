"""Revive a saved state (template mode unless "compression" says otherwise) as whoever runs
this (a non-root user, as a Nix builder is), from a store-like copy owned by someone else.
Used by the runtime tests and bench/snapshot.py.

    python3 revive_child.py '{"qemu": ..., "accel": "tcg", "args": [QEMU args], "state": ...,
                              "mib": 256, "rundir": ..., "reps": 1, "peek": [ADDR, SIZE],
                              "compression": "template"}'

Prints one JSON object: {"uid", "probe_s" (the QEMU capability probe, done once before the
revives), "times" (s, QEMU start to guest running, per revive),
"argv" (the last QEMU command line), "copied" (a RAM copy was made), "peek_sha256" (of
guest RAM [ADDR, ADDR+SIZE) after the last revive)}.  Runs with a bare python3 (stdlib only).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "generator"))

from wingen.runtime.qemu_caps import probe_qemu
from wingen.runtime.snapshot import restore
from wingen.runtime.sparse import sparse_copy
from wingen.runtime.supervise import Supervisor
from wingen.runtime.vm import VM, Restore, VMSpec


def store_copy(state: Path, dest: Path, owner: str = "nobody") -> Path:
    """Copy a saved state (and its .ram/.json) into dest like a Nix store path: files 0444 and
    dest 0555, all owned by `owner`.  Returns the copied state."""
    dest.mkdir(parents=True)
    for src in state.parent.iterdir():
        if src.name == state.name or src.name.startswith(state.name + "."):
            sparse_copy(src, dest / src.name)  # an 8 GiB RAM file stays a few MiB on disk
    uid = pwd.getpwnam(owner).pw_uid
    for f in dest.iterdir():
        f.chmod(0o444)
        os.chown(f, uid, uid)
    dest.chmod(0o555)
    os.chown(dest, uid, uid)
    return dest / state.name


def readable_copy(dest: Path, uid: int, gid: int) -> Path:
    """This script and the runtime package copied into dest, owned by uid: the checkout may lie
    where another user cannot read (a clone in a 0700 directory, like a home).  Returns the
    copied script."""
    here = Path(__file__).resolve()
    runtime = here.parents[2] / "generator" / "wingen"
    code = dest / "generator" / "wingen"
    code.mkdir(parents=True)
    shutil.copy(runtime / "__init__.py", code / "__init__.py")
    shutil.copytree(runtime / "runtime", code / "runtime", ignore=shutil.ignore_patterns("__py*"))
    script = dest / "tests" / "runtime" / here.name  # parents[2] finds generator/ as here
    script.parent.mkdir(parents=True)
    shutil.copy(here, script)
    for path in [dest, *dest.rglob("*")]:
        os.chown(path, uid, gid)
    return script


def run_as(user: str, spec: dict[str, Any], *, timeout: float = 600) -> dict[str, Any]:
    """Run this script as `user` (root only) in a fresh rundir it owns, from a copy there (with
    the runtime package) that the user can read; its result, plus "log" (its stderr).  The
    system python3: the user cannot reach a python under /root."""
    pw = pwd.getpwnam(user)
    run = Path(spec["rundir"])
    run.mkdir()
    os.chown(run, pw.pw_uid, pw.pw_gid)
    script = readable_copy(run / "code", pw.pw_uid, pw.pw_gid)
    proc = subprocess.run(
        ["/usr/bin/python3", str(script), json.dumps(spec)],
        user=pw.pw_uid,
        group=pw.pw_gid,
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(run)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"revive as {user} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    result["log"] = proc.stderr
    return result


def main(spec: dict[str, Any]) -> dict[str, Any]:
    state = Path(spec["state"])
    comp = spec.get("compression", "template")
    rundir = Path(spec["rundir"])
    times: list[float] = []
    out: dict[str, Any] = {"uid": os.getuid()}
    t0 = time.monotonic()
    probe_qemu(spec["qemu"])
    out["probe_s"] = time.monotonic() - t0
    with Supervisor() as sup:
        for i in range(int(spec.get("reps", 1))):
            run = rundir / f"revive{i}"
            run.mkdir()
            vm = VM(
                VMSpec(
                    name="guest",
                    memory_mib=int(spec["mib"]),
                    args=list(spec["args"]),
                    restore=Restore(state, comp),
                ),
                qemu=spec["qemu"],
                accel=spec["accel"],
                rundir=run,
                logdir=run,
            )
            t0 = time.monotonic()
            vm.start(sup)
            restore(vm.connect(30), state, comp, sup=sup, deadline=60)
            times.append(time.monotonic() - t0)
            out["argv"] = " ".join(vm.argv())
            out["copied"] = vm.ram_copy.exists()
            if spec.get("peek") and i == int(spec.get("reps", 1)) - 1:
                addr, size = spec["peek"]
                dump = run / "peek.bin"
                vm.client().execute("pmemsave", {"val": addr, "size": size, "filename": str(dump)})
                out["peek_sha256"] = hashlib.sha256(dump.read_bytes()).hexdigest()
            vm.close(sup)
    out["times"] = times
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
