"""Revive → first guest command, Linux guest under TCG, and where the time goes.

    python3 bench/revive.py [--runs 3] [--snapshot 'compression = "zstd"']

Builds `linuxBase` once the way the e2e suite does (the stand-in kernel from tests/e2e/setup.sh,
nix/standin, a private nix.conf with the sandbox off), then RUNS fresh `runInLinuxVM`
derivations whose builder's first act is to create a marker file in xchg.  While each one
builds, a watcher polls its build directory every 5 ms and stamps, on the host's clock, the
moment each sign of progress first appears:

  stage started      the build directory exists (stage.sh begins: overlay disk, spec)
  QEMUs started      the controller's serial log exists (the runtime has started both VMs)
  VMs running        the runtime's "revive: guest, controller running after" line (nix-build's
                     log): both states loaded, both VMs continued
  shares mounted     the controller prints "running the guest command" (told to go on by the
                     runtime, it mounted the host's store and xchg over 9p)
  command sent       xchg/wingen/build.log (the controller started the guest command over the
                     SSH connection it held across the save)
  command running    the marker (shares mapped, environment restored, the builder runs)

`revive_to_command_s` is "stage started" → "command running", median of the runs.

Both VMs are revived: the controller was saved ready (smbd up, SSH to the guest held open, no 9p
mounted), so nothing boots.  This bench's copy of the rendered expression (only this copy) also
prints each VM's uptime at a few steps after the revive (MARKS): the controller's on its
console, the guest's into build.log (each its kernel's own clock, which the snapshot carries on).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "generator"))
sys.path.insert(0, str(ROOT / "tests"))

from e2e.guest import CONFIG  # noqa: E402 -- the e2e suite's guest, so the same figures
from wingen.loader import parse_config  # noqa: E402
from wingen.render import render  # noqa: E402

TOP = """\
let
  pkgs = import {standin} {{ kernelRoot = {kernel}; }};
  w = pkgs.callPackage {rendered} {{ }};
  benchBase = {base};
  probe = n: w.runInVMWith benchBase (derivation {{
    name = "{name}-revive-${{toString n}}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" ": > /tmp/xchg/command-running; {work}{hold}mkdir $out" ];
  }});
in
w // {{ inherit benchBase; {probes} }}
"""

EVENTS = [
    "stage started",
    "QEMUs started",
    "VMs running",
    "shares mounted",
    "command sent",
    "command running",
]


# (text in the rendered controller scripts, mark printed just before it)
MARKS = [
    ('mount_shares || fail "cannot mount the host\'s shares (9p) after the revive"', "signalled"),
    ('if [ -n "\'\'$held" ]; then\n    echo "wingen-controller: running', "9p-mounted"),
    # In the guest (into build.log): its command began, both shares are mapped.
    ("set -u\nserver=", "guest-command-began"),
    ("    until mount -t cifs", "mount-began"),
    ("}\nstore nixstore", "mount-done"),
    ("map xchg /tmp/xchg\n", "xchg-mapping"),
    (". /tmp/xchg/saved-env ||", "build-script-began"),
]


def instrument(expr: str) -> str:
    """Print `wingen-mark NAME UPTIME` on the controller's console before each MARKS step."""
    for text, name in MARKS:
        assert expr.count(text) == 1, f"bench/revive.py: {text!r} not once in the rendered Nix"
        head, sep, tail = expr.partition(text)
        expr = f'{head}echo "wingen-mark {name} $(cut -d" " -f1 /proc/uptime)"\n{sep}{tail}'
    return expr


def vm_marks(log: Path) -> str:
    if not log.exists():
        return "none"
    marks = [ln.split()[1:3] for ln in log.read_text("latin-1").splitlines() if "wingen-mark" in ln]
    return ", ".join(f"{name} {float(up):.2f}" for name, up in marks if up)


class Watcher(threading.Thread):
    """Stamps the first appearance of each event in the build directory under tmp."""

    def __init__(self, tmp: Path, drv: str) -> None:
        super().__init__(daemon=True)
        self.tmp = tmp
        self.drv = drv
        self.seen: dict[str, float] = {}
        self.marks = ""
        self.stop = threading.Event()

    def mark(self, event: str) -> None:
        self.seen.setdefault(event, time.monotonic())

    def run(self) -> None:
        work: Path | None = None
        while not self.stop.is_set():
            if work is None:
                found = sorted(self.tmp.glob(f"nix-build-{self.drv}.drv-*"))
                if found:
                    work = found[0]
                    self.mark("stage started")
            if work is not None:
                ctl = work / "wingen-controller.serial.log"
                if ctl.exists():
                    self.mark("QEMUs started")
                    text = ctl.read_text("latin-1")
                    if "running the guest command" in text:
                        self.mark("shares mounted")
                w = work / "xchg" / "wingen"
                if (w / "build.log").exists():
                    self.mark("command sent")
                if (work / "xchg" / "command-running").exists():
                    self.mark("command running")
                    # Before Nix removes the build dir. The guest's lines follow the marker
                    # in build.log within milliseconds.
                    time.sleep(0.2)
                    self.marks = (
                        f"controller {vm_marks(work / 'wingen-controller.serial.log')}; "
                        f"guest {vm_marks(w / 'build.log')}"
                    )
                    return
            time.sleep(0.005)


def nix_build(d: Path, env: dict[str, str], attr: str, watch: Watcher | None = None) -> str:
    proc = subprocess.Popen(
        ["nix-build", str(d / "top.nix"), "-A", attr, "-o", str(d / attr)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if watch is not None and "wingen-runtime: revive: " in line and "running after" in line:
            watch.mark("VMs running")
    if proc.wait() != 0:
        raise SystemExit(f"nix-build {attr} failed:\n{''.join(lines[-60:])}")
    return "".join(lines)


def setup(
    d: Path,
    snapshot: str,
    runs: int,
    *,
    memory_mib: int = 0,
    hold_s: int = 0,
    prepare: str = "",
    work: str = "",
) -> tuple[dict[str, str], str]:
    """A render of the e2e guest (`memory_mib` if given), its base (`benchBase`: the guest's
    `prepare` command run before the save, if given) and `runs` probes, each a new derivation
    whose builder marks xchg/command-running, runs `work` (then marks xchg/work-done), waits
    `hold_s` and ends."""
    kernel = subprocess.run(
        ["sh", str(ROOT / "tests" / "e2e" / "setup.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout.strip()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    text = CONFIG.format(name=name).replace(
        '[snapshot]\ncompression = "zstd"', "[snapshot]\n" + snapshot
    )
    if memory_mib:
        text = text.replace("memory_mib = 256", f"memory_mib = {memory_mib}")
    cfg = parse_config(tomllib.loads(text))
    (d / "linux.nix").write_text(instrument(render(cfg, d).expression))
    probes = " ".join(f"revive{i} = probe {i};" for i in range(runs))
    (d / "top.nix").write_text(
        TOP.format(
            standin=ROOT / "nix" / "standin",
            kernel=f'"{kernel}"',
            rendered=d / "linux.nix",
            name=name,
            probes=probes,
            hold=f"sleep {hold_s}; " if hold_s else "",
            work=f"{work}; : > /tmp/xchg/work-done; " if work else "",
            base=f"w.suspend {{ prepare = {json.dumps(prepare)}; }}" if prepare else "w.linuxBase",
        )
    )
    conf = d / "nix-conf"
    conf.mkdir()
    (conf / "nix.conf").write_text(
        "sandbox = false\nbuild-users-group =\nsubstituters =\n"
        "experimental-features = nix-command flakes\n"
    )
    build_tmp = d / "builds"
    build_tmp.mkdir()
    env = {**os.environ, "NIX_CONF_DIR": str(conf), "TMPDIR": str(build_tmp)}
    env.pop("NIX_REMOTE", None)
    return env, name


def measure(runs: int, snapshot: str) -> float:
    """Print the breakdown of each run; return the median revive → command running (s)."""
    with tempfile.TemporaryDirectory(prefix="wingen-revive-bench-") as tmp:
        d = Path(tmp)
        env, name = setup(d, snapshot, runs)
        t0 = time.monotonic()
        nix_build(d, env, "benchBase")
        print(f"linuxBase ({snapshot}) built in {time.monotonic() - t0:.1f} s", flush=True)
        totals = []
        for i in range(runs):
            watch = Watcher(Path(env["TMPDIR"]), f"{name}-revive-{i}")
            watch.start()
            nix_build(d, env, f"revive{i}", watch)
            watch.stop.set()
            watch.join()
            start = watch.seen["stage started"]
            parts = [f"{ev} {watch.seen[ev] - start:5.2f}" for ev in EVENTS[1:] if ev in watch.seen]
            total = watch.seen["command running"] - start
            totals.append(total)
            print(f"run {i + 1}: " + ", ".join(parts) + " s", flush=True)
            print(f"  uptime at: {watch.marks} s", flush=True)
        return statistics.median(totals)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--snapshot", default='compression = "zstd"', help="the [snapshot] lines")
    args = ap.parse_args()
    print(f"revive_to_command_s={measure(args.runs, args.snapshot):.2f}")


if __name__ == "__main__":
    main()
