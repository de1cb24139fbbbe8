"""Many builds, one base: N revives of one 2 GiB Linux base at once, per snapshot mode.

    python3 bench/density.py [--memory 2048] [--counts 1,2,4]

For each mode (template, compressed) and each saved workload (idle: the guest as booted; ws512:
512 MiB of random bytes in its tmpfs when it is saved, as a Windows guest holds about 1 GB) it
builds a base the way bench/revive.py does (the e2e guest, the stand-in kernel, sandbox off),
then for each N starts N fresh `runInLinuxVM` builds at once. Each builder marks xchg, reads the
working set (the fixed workload), marks again and holds its VMs; once all have, it reads, for all
their QEMU processes (guests and controllers):

  pss_mib        the summed proportional set size (/proc/PID/smaps_rollup): a page N processes
                 share counts 1/N in each, so the sum is what they cost together
  avail_drop_mib how much the host's MemAvailable fell since before the builds started (it
                 counts page cache and tmpfs copies that PSS misses)
  revive_s       each build's time from its build dir appearing to its guest running the
                 command (bench/revive.py's "stage started" -> "command running"), median

It also copies each base to a second local store (`nix copy --to` a store in a temporary
directory) and prints its bytes on disk there against the source: a NAR carries no holes.

Last lines: density_<mode>_pss_ratio_4 = PSS of 4 / (4 x PSS of 1), per mode.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import revive  # bench/revive.py: the base, the probes and the watcher

MODES = {"template": 'mode = "template"', "compressed": 'compression = "zstd"'}
# What the guest holds in RAM when it is saved: nothing more than after boot, or a working set
# like a Windows guest's (about 1 GB after logon), here 512 MiB of random bytes in its tmpfs.
WORKLOADS = {"idle": "", "ws512": "dd if=/dev/urandom of=/tmp/ws bs=1M count=512 2>/dev/null; sync"}
# What every build does in its guest before it is measured: read every byte of the working set
# (md5sum: busybox cat would sendfile() to /dev/null, which reads nothing).
WORK = "md5sum /tmp/ws > /dev/null 2>&1 || true"
HOLD_S = 90  # the builder holds its VMs this long after its work: time to measure all N


def qemu_pids(build_tmp: Path) -> list[int]:
    """The QEMU processes of the builds under build_tmp (unsandboxed: their cwd is there)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"qemu-system" not in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                continue
            if str((proc / "cwd").readlink()).startswith(str(build_tmp)):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _done(build_tmp: Path) -> list[Path]:
    """The builds that did their work (each build's dir goes when it ends: only live ones)."""
    return list(build_tmp.glob("nix-build-*.drv-*/xchg/work-done"))


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def pss_by_kind(pid: int) -> dict[str, int]:
    """One process's PSS (KiB) by what is mapped: the guest's RAM (a file, in template mode, or
    anonymous memory), QEMU's code, and the rest of its anonymous memory."""
    kinds: dict[str, int] = {}
    kind = "other"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            path = head[5] if len(head) > 5 else ""
            size_kib = _span_kib(head[0])
            if path.endswith(".ram") or path.startswith("/memfd:"):
                kind = "RAM file"
            elif path.startswith("/") and not path.startswith("/dev/"):
                kind = "code and data files"
            elif size_kib >= 64 << 10:
                kind = "large anonymous (guest RAM, TCG code buffer)"
            else:
                kind = "small anonymous (heap, stacks)"
        elif line.startswith("Pss:"):
            kinds[kind] = kinds.get(kind, 0) + int(head[1])
    return kinds


def _span_kib(span: str) -> int:
    start, end = span.split("-")
    return (int(end, 16) - int(start, 16)) >> 10


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise SystemExit("no MemAvailable in /proc/meminfo")


def du_kib(path: Path) -> tuple[int, int]:
    """(on disk, apparent) KiB of a tree."""
    on_disk = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    apparent = subprocess.run(["du", "-sk", "--apparent-size", str(path)], capture_output=True,
                              text=True, check=True)  # fmt: skip
    return int(on_disk.stdout.split()[0]), int(apparent.stdout.split()[0])


def at_once(d: Path, env: dict[str, str], name: str, first: int, n: int) -> dict[str, float]:
    """Start probes first..first+n-1 together; measure once all run their command."""
    build_tmp = Path(env["TMPDIR"])
    before = mem_available_kib()
    watchers = [revive.Watcher(build_tmp, f"{name}-revive-{first + i}") for i in range(n)]
    for w in watchers:
        w.start()
    builds = [
        threading.Thread(target=revive.nix_build, args=(d, env, f"revive{first + i}", w))
        for i, w in enumerate(watchers)
    ]
    for b in builds:
        b.start()
    deadline = time.monotonic() + 600
    while not all("command running" in w.seen for w in watchers) or len(_done(build_tmp)) < n:
        if time.monotonic() > deadline or not any(b.is_alive() for b in builds):
            raise SystemExit(f"{n} revives: not every guest reached its command and did its work")
        time.sleep(0.05)
    time.sleep(1)  # every guest past its marker
    pids = qemu_pids(build_tmp)
    pss = sum(pss_kib(p) for p in pids)
    kinds: dict[str, int] = {}
    for p in pids:
        for kind, kib in pss_by_kind(p).items():
            kinds[kind] = kinds.get(kind, 0) + kib
    drop = before - mem_available_kib()
    for b in builds:
        b.join()
    for w in watchers:
        w.stop.set()
    times = [w.seen["command running"] - w.seen["stage started"] for w in watchers]
    print(
        "   PSS by kind: " + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in sorted(kinds.items()))
    )
    return {
        "qemus": len(pids),
        "pss_mib": pss / 1024,
        "avail_drop_mib": drop / 1024,
        "revive_s": statistics.median(times),
        "revive_max_s": max(times),
    }


def copied(d: Path, env: dict[str, str], base: Path) -> str:
    """The base's bytes on disk here and in a second local store it is copied to."""
    src_disk, src_apparent = du_kib(base)
    other = d / "other-store"
    subprocess.run(["nix", "copy", "--no-check-sigs", "--to", str(other), str(base)], env=env,
                   check=True, capture_output=True)  # fmt: skip
    dst_disk, _ = du_kib(other / base.relative_to("/"))
    return (
        f"on disk {src_disk / 1024:.0f} MiB (apparent {src_apparent / 1024:.0f} MiB), "
        f"after nix copy {dst_disk / 1024:.0f} MiB"
    )


def measure(
    mode: str, workload: str, memory: int, counts: list[int]
) -> dict[int, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="wingen-density-bench-") as tmp:
        d = Path(tmp)
        env, name = revive.setup(d, MODES[mode], sum(counts), memory_mib=memory, hold_s=HOLD_S,
                                 prepare=WORKLOADS[workload], work=WORK)  # fmt: skip
        t0 = time.monotonic()
        revive.nix_build(d, env, "benchBase")
        mode = f"{mode}, {workload}"
        print(f"{mode}: base ({memory} MiB guest) built in {time.monotonic() - t0:.0f} s")
        print(f"{mode}: base {copied(d, env, (d / 'benchBase').resolve())}", flush=True)
        results: dict[int, dict[str, float]] = {}
        first = 0
        for n in counts:
            r = at_once(d, env, name, first, n)
            first += n
            results[n] = r
            print(
                f"{mode}: {n} at once: {r['qemus']:.0f} QEMUs, PSS {r['pss_mib']:.0f} MiB "
                f"({r['pss_mib'] / n:.0f} per build), MemAvailable -{r['avail_drop_mib']:.0f} "
                f"MiB, revive to command {r['revive_s']:.2f} s (slowest {r['revive_max_s']:.2f})",
                flush=True,
            )
        return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory", type=int, default=2048, help="the guest's memory_mib")
    ap.add_argument("--counts", default="1,2,4", help="how many revives at once, in turn")
    ap.add_argument("--workloads", default="idle,ws512", help="what the saved guest holds")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    top = max(counts)
    ratios = {}
    for workload in args.workloads.split(","):
        for mode in MODES:
            r = measure(mode, workload, args.memory, counts)
            ratio = r[top]["pss_mib"] / (top * r[1]["pss_mib"]) if 1 in r else float("nan")
            ratios[mode if workload == "ws512" else f"{mode}_{workload}"] = ratio
    # The working-set figures last: a Windows base holds about 1 GB when it is saved.
    for key, ratio in sorted(ratios.items(), key=lambda kv: "_" not in kv[0]):
        print(f"density_{key}_pss_ratio_{top}={ratio:.2f}")


if __name__ == "__main__":
    main()
