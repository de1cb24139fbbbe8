"""Snapshot bench: the seed's gzip path vs ours on the same guest state.

    python3 bench/snapshot.py [--mib 2048] [--fill-mib 1792] [--qemu qemu-system-x86_64]

The guest is the runtime's generated tiny firmware (it prints a line and halts), with its RAM
preloaded through QEMU's loader device, so both paths save exactly the same RAM:
  * idle:   nothing loaded (the RAM is zero apart from the firmware's few bytes);
  * filled: FILL MiB loaded: 50% random (compressed files, crypto), 30% text, 10% structured
            binary (counters, pointers), 10% zero pages (freed memory).
Paths:
  * seed:  QMP max-bandwidth 4095 MiB/s, `migrate "exec:gzip -c > state.gz"`, revive with
           `-incoming "exec:gzip -c -d state.gz"`, poll until paused, `cont` (what the
           nixpkgs expression did, through QMP because HMP migrate_set_speed is gone in 7.2).
  * ours:  wingen.runtime.snapshot save/restore, zstd -2 -T0 over a pipe handed to QEMU.
  * template: RAM in a share=on file, device state only; revive maps the file privately.
Save is timed from `stop` until the state file is complete; restore from starting QEMU until
the guest runs again (template: median of 5); dirty pages are synced before each revive so
background writeback of the fresh file does not land in either path's figure.  The last line
compares ours (zstd) with the seed on the filled guest.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "generator"))

from wingen.runtime.firmware import write_bios
from wingen.runtime.qmp import QMPClient
from wingen.runtime.snapshot import ram_path, restore, save
from wingen.runtime.supervise import Supervisor
from wingen.runtime.vm import VM, Restore, VMSpec

READY = "BENCH-READY"
LOAD_ADDR = 16 << 20  # above the low-memory areas
SEG = 4 << 20


def make_fill(path: Path, mib: int) -> None:
    rng = random.Random(42)  # noqa: S311 - a reproducible fill, not secrets
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
        for _ in range(5000)
    ]
    text = bytearray()
    while len(text) < 32 << 20:
        line = " ".join(rng.choice(words) for _ in range(12))
        text += f"{rng.randint(0, 99999):05d} {line}\n".encode()
    with path.open("wb") as f:
        for i in range(mib * (1 << 20) // SEG):
            kind = i % 10
            if kind < 5:
                f.write(os.urandom(SEG))
            elif kind < 8:
                off = rng.randrange(0, len(text) - SEG)
                f.write(text[off : off + SEG])
            elif kind == 8:
                base = rng.randrange(1 << 40)
                f.write(
                    b"".join(
                        ((base + 64 * j) ^ rng.getrandbits(6)).to_bytes(8, "little")
                        for j in range(SEG // 8)
                    )
                )
            else:
                f.write(bytes(SEG))


class Bench:
    def __init__(self, tmp: Path, qemu: str, mib: int) -> None:
        self.tmp = tmp
        self.qemu = qemu
        self.mib = mib
        self.bios = write_bios(tmp / "bios.bin", READY + "\r\n")
        self.n = 0

    def vm(
        self,
        sup: Supervisor,
        fill: Path | None,
        *,
        template: bool = False,
        rest: Restore | None = None,
        extra: list[str] | None = None,
    ) -> VM:
        self.n += 1
        args = ["-bios", str(self.bios), *(extra or [])]
        if fill is not None:
            args += ["-device", f"loader,file={fill},addr={LOAD_ADDR:#x},force-raw=on"]
        run = self.tmp / f"run{self.n}"
        run.mkdir()
        return VM(
            VMSpec(name="guest", memory_mib=self.mib, args=args, template=template, restore=rest),
            qemu=self.qemu,
            accel="tcg",
            rundir=run,
            logdir=run,
        )

    def boot(self, sup: Supervisor, fill: Path | None, template: bool = False) -> VM:
        vm = self.vm(sup, fill, template=template)
        vm.start(sup)
        vm.connect(300)
        end = time.monotonic() + 60
        while READY not in (vm.serial_log.read_text() if vm.serial_log.exists() else ""):
            if time.monotonic() > end:
                raise SystemExit(vm.report())
            time.sleep(0.02)
        return vm

    def seed(self, fill: Path | None) -> tuple[float, float, int]:
        state = self.tmp / "seed-state.gz"
        with Supervisor() as sup:
            vm = self.boot(sup, fill)
            c = vm.client()
            t0 = time.monotonic()
            c.execute("stop")
            c.execute("migrate-set-parameters", {"max-bandwidth": 4095 << 20})
            c.execute("migrate", {"uri": f"exec:gzip -c > '{state}'"})
            while c.execute("query-migrate").get("status") != "completed":
                time.sleep(0.02)
            t_save = time.monotonic() - t0
            c.execute("quit")
            vm.close(sup)
            size = state.stat().st_size
            os.sync()  # no writeback of the fresh state in the background of the revive
            dst = self.vm(sup, None, extra=["-incoming", f"exec: gzip -c -d '{state}'"])
            t0 = time.monotonic()
            dst.start(sup)
            c = dst.connect(300)
            while c.execute("query-status")["status"] != "paused":
                time.sleep(0.01)
            c.execute("cont")
            t_restore = time.monotonic() - t0
            dst.close(sup)
        state.unlink()
        return t_save, t_restore, size

    def ours(self, fill: Path | None, compression: str) -> tuple[float, float, int]:
        state = self.tmp / f"ours-{compression}" / "state"
        with Supervisor() as sup:
            vm = self.boot(sup, fill, template=compression == "template")
            result = save(
                vm.client(),
                state,
                compression,
                sup=sup,
                deadline=600,
                ram_file=vm.ram_file if compression == "template" else None,
            )
            vm.close(sup)
            size = int(result.get("ram_disk_bytes", 0)) + state.stat().st_size
            os.sync()
            # A template revive takes tens of ms, so scheduling noise from other work on the
            # machine matters: take the median of five.
            times = []
            for _ in range(5 if compression == "template" else 1):
                dst = self.vm(sup, None, rest=Restore(state, compression))
                t0 = time.monotonic()
                dst.start(sup)
                c: QMPClient = dst.connect(300)
                restore(c, state, compression, sup=sup, deadline=600)
                times.append(time.monotonic() - t0)
                dst.close(sup)
            t_restore = sorted(times)[len(times) // 2]
            if len(times) > 1:
                print(
                    f"  ({compression} revives: {', '.join(f'{t:.3f}' for t in times)} s)",
                    flush=True,
                )
        shutil.rmtree(state.parent)
        return result["save_s"], t_restore, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=2048)
    ap.add_argument("--fill-mib", type=int, default=1792)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wingen-bench-") as tmpdir:
        tmp = Path(tmpdir)
        b = Bench(tmp, args.qemu, args.mib)
        fill = tmp / "fill.bin"
        t0 = time.monotonic()
        make_fill(fill, args.fill_mib)
        os.sync()
        print(
            f"guest: {args.mib} MiB, TCG; filled = {args.fill_mib} MiB loaded "
            f"(made in {time.monotonic() - t0:.1f} s)",
            flush=True,
        )
        results: dict[tuple[str, str], tuple[float, float, int]] = {}
        for label, f in (("idle", None), ("filled", fill)):
            for path in ("seed-gzip", "ours-zstd", "ours-template"):
                r = b.seed(f) if path == "seed-gzip" else b.ours(f, path.split("-", 1)[1])
                results[(label, path)] = r
                what = "disk footprint" if path == "ours-template" else "state size"
                print(
                    f"{label:6} {path:13} save {r[0]:7.2f} s  restore {r[1]:6.3f} s  "
                    f"{what} {r[2] / 2**20:8.1f} MiB",
                    flush=True,
                )
        tpl = results[("filled", "ours-template")]
        print(
            f"template revive ({args.mib} MiB guest, filled): {tpl[1]:.3f} s to running, "
            f"disk footprint {tpl[2] / 2**20:.1f} MiB "
            f"(gzip state {results[('filled', 'seed-gzip')][2] / 2**20:.1f} MiB); "
            f"idle: {results[('idle', 'ours-template')][1]:.3f} s, "
            f"{results[('idle', 'ours-template')][2] / 2**20:.1f} MiB"
        )
        seed = results[("filled", "seed-gzip")]
        ours = results[("filled", "ours-zstd")]
        print("last line: filled guest, ours-zstd (zstd -2 -T0 over a pipe) vs seed-gzip")
        print(
            f"save_speedup={seed[0] / ours[0]:.1f} restore_speedup={seed[1] / ours[1]:.1f} "
            f"size_ratio={ours[2] / seed[2]:.3f}"
        )
    _ = ram_path  # the template RAM file lives beside the state (see snapshot.ram_path)


if __name__ == "__main__":
    main()
