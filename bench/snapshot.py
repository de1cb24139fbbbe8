"""Snapshot bench: the seed's gzip path vs ours, on a real Linux guest's memory, per content type.

    python3 bench/snapshot.py [--mib 2048] [--runs 3] [--qemu qemu-system-x86_64] [--no-8g]
                              [--no-revive-command]

Run as root: the read-only template revive copies the state to a store-like directory owned by
`nobody` (files 0444) and revives it as the non-root builder `nixbld1`.

The guest (bench/linux_guest.py) is Debian's kernel on a busybox initramfs, MIB of RAM, TCG,
booted once per content type:
  * zero:   just after boot (mostly never-touched RAM);
  * real:   after unpacking a tarball of this machine's real files into tmpfs and reading them
            (source text, headers, ELF binaries, the compressed tarball);
  * random: after writing 768 MiB of /dev/urandom into tmpfs.
Once booted, the guest is saved as a reference (uncompressed stream) and every run of every
path starts from that same paused state, revived, so every path saves exactly the same RAM.
Paths:
  * seed-gzip:   QMP max-bandwidth 4095 MiB/s, `migrate "exec:gzip -c > state.gz"`, revive with
                 `-incoming "exec:gzip -c -d state.gz"`, poll until paused, `cont` (what the
                 nixpkgs expression did, through QMP because HMP migrate_set_speed is gone);
  * pipe-zstd:   ours for `zstd`: zstd -2 -T0 on the stream, over a pipe handed to QEMU;
  * pipe-none:   the plain stream into the file, over the same fd;
  * mapped-none: mapped-ram + multifd into a sparse file (QEMU >= 9.0);
  * mapped-zstd: mapped-none, then zstd -2 -T0 of that file (revive: unzstd to a sparse file,
                 then mapped-ram in): the only way to combine the two (mapped-ram refuses
                 multifd compression);
  * template:    RAM in a share=on file, device state only; revive maps the file privately.
Save is timed from `stop` until the state file is complete; revive from starting QEMU until the
guest runs again.  Each figure is the median of RUNS runs; dirty pages are synced before each
revive.  Sizes: apparent (what `ls -l` shows), on disk (allocated blocks: sparse files), NAR
(`nix-store --dump`, what `nix copy` and binary caches move; it has no holes).
Then the template revive from a read-only store file, as the runtime does it, median of 5: the
real-content guest (for the record: its QEMU also reads the 84 MiB -initrd at start), then the
figures, the guest booted light at MIB and at 8 GiB; then bench/revive.py's revive → first guest
command (a whole `runInLinuxVM` build through Nix, by stage).  The last line compares pipe-zstd
(ours) with seed-gzip on the real-content guest.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "generator"))
sys.path.insert(0, str(HERE.parent / "tests" / "runtime"))

from revive_child import run_as, store_copy  # noqa: E402

import linux_guest  # noqa: E402
import revive  # noqa: E402
from wingen.runtime.qemu_caps import probe_qemu  # noqa: E402
from wingen.runtime.snapshot import meta_path, ram_path, restore, save  # noqa: E402
from wingen.runtime.supervise import Supervisor  # noqa: E402
from wingen.runtime.vm import VM, Restore, VMSpec  # noqa: E402

CONTENTS = ("zero", "real", "random")
PATHS = ("seed-gzip", "pipe-zstd", "pipe-none", "mapped-none", "mapped-zstd", "template")
BUILDER = "nixbld1"
ZSTD = ["zstd", "-2", "-T0", "-q"]


@dataclass
class Figures:
    save: list[float] = field(default_factory=list)
    revive: list[float] = field(default_factory=list)
    apparent: int = 0
    on_disk: int = 0
    nar: int = 0


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def nar_size(files: list[Path]) -> int:
    """The NAR size of a directory holding these files (`nix-store --dump`)."""
    d = files[0].parent / "nar"
    d.mkdir()
    for f in files:
        os.link(f, d / f.name)
    try:
        proc = subprocess.Popen(["nix-store", "--dump", str(d)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        size = 0
        while chunk := proc.stdout.read(1 << 20):
            size += len(chunk)
        if proc.wait() != 0:
            raise SystemExit("nix-store --dump failed")
        return size
    finally:
        shutil.rmtree(d)


class Bench:
    def __init__(self, tmp: Path, qemu: str, mib: int) -> None:
        self.tmp = tmp
        self.qemu = qemu
        self.mib = mib
        self.vmlinuz = tmp / "vmlinuz"
        shutil.copyfile(linux_guest.kernel(), self.vmlinuz)  # readable by the builder user
        self.initrd = linux_guest.initramfs(tmp / "initrd.cpio", payload=False)
        self.initrd_real = linux_guest.initramfs(tmp / "initrd-real.cpio", payload=True)
        self.n = 0

    def args(self, fill: str) -> list[str]:
        initrd = self.initrd_real if fill == "real" else self.initrd
        return linux_guest.qemu_args(self.vmlinuz, initrd, fill)

    def vm(
        self,
        fill: str,
        *,
        mib: int | None = None,
        template: bool = False,
        rest: Restore | None = None,
        extra: list[str] | None = None,
    ) -> VM:
        self.n += 1
        run = self.tmp / f"run{self.n}"
        run.mkdir()
        spec = VMSpec(
            name="guest",
            memory_mib=mib or self.mib,
            args=[*self.args(fill), *(extra or [])],
            template=template,
            restore=rest,
        )
        return VM(spec, qemu=self.qemu, accel="tcg", rundir=run, logdir=run)

    def boot(
        self, sup: Supervisor, fill: str, *, mib: int | None = None, template: bool = False
    ) -> VM:
        vm = self.vm(fill, mib=mib, template=template)
        t0 = time.monotonic()
        vm.start(sup)
        vm.connect(60)
        while linux_guest.READY not in vm.serial_log.read_text("latin-1"):
            if time.monotonic() - t0 > 900 or vm.exit_code() is not None:
                raise SystemExit(vm.report())
            time.sleep(0.2)
        log = vm.serial_log.read_text("latin-1").splitlines()
        free = next(x for x in log if linux_guest.READY in x).split()[-2]
        print(f"  booted {fill} in {time.monotonic() - t0:.1f} s (MemFree {free} kB)", flush=True)
        return vm

    def reference(self, fill: str, template: bool) -> Path:
        """Boot and save (plain stream) a guest.  A template VM's RAM is a memory backend, which
        only a VM with the same backend can load: the template path has its own reference."""
        state = self.tmp / f"ref-{fill}{'-tpl' if template else ''}" / "state"
        with Supervisor() as sup:
            vm = self.boot(sup, fill, template=template)
            save(vm.client(), state, "none", sup=sup, deadline=900, mapped=False)
            vm.close(sup)
        return state

    def paused(self, sup: Supervisor, fill: str, ref: Path, template: bool) -> VM:
        """The reference state, revived and left paused: the same RAM for every run."""
        vm = self.vm(fill, template=template, rest=Restore(ref, "none"))
        vm.start(sup)
        restore(vm.connect(60), ref, "none", sup=sup, deadline=900, cont=False)
        return vm

    def revived(self, sup: Supervisor, fill: str, state: Path, comp: str) -> float:
        dst = self.vm(fill, rest=Restore(state, comp))
        t0 = time.monotonic()
        dst.start(sup)
        restore(dst.connect(60), state, comp, sup=sup, deadline=900)
        took = time.monotonic() - t0
        dst.close(sup)
        return took

    def run(self, fill: str, refs: dict[bool, Path], path: str) -> tuple[float, float, list[Path]]:
        """One save and one revive on one path: (save s, revive s, the stored files)."""
        out = self.tmp / f"out-{fill}-{path}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        state = out / "state"
        with Supervisor() as sup:
            tpl = path == "template"
            src = self.paused(sup, fill, refs[tpl], template=tpl)
            if path == "seed-gzip":
                t_save = seed_save(src, state)
                src.close(sup)
                os.sync()
                dst = self.vm(fill, extra=["-incoming", f"exec: gzip -c -d '{state}'"])
                t0 = time.monotonic()
                dst.start(sup)
                c = dst.connect(60)
                while c.execute("query-status")["status"] != "paused":
                    time.sleep(0.01)
                c.execute("cont")
                t_rev = time.monotonic() - t0
                dst.close(sup)
                return t_save, t_rev, [state]
            if path == "mapped-zstd":
                raw = out / "raw"
                r = save(src.client(), raw, "none", sup=sup, deadline=900, mapped=True)
                t0 = time.monotonic()
                subprocess.run([*ZSTD, str(raw), "-o", str(state)], check=True)
                t_save = r["save_s"] + time.monotonic() - t0
                src.close(sup)
                raw.unlink()
                meta_path(raw).unlink()
                os.sync()
                t0 = time.monotonic()
                subprocess.run(["zstd", "-d", "-q", str(state), "-o", str(raw)], check=True)
                meta_path(raw).write_text(json.dumps({"format": "mapped-ram"}))
                t_rev = time.monotonic() - t0 + self.revived(sup, fill, raw, "none")
                raw.unlink()
                meta_path(raw).unlink()
                return t_save, t_rev, [state]
            comp = {"pipe-zstd": "zstd", "template": "template"}.get(path, "none")
            r = save(
                src.client(),
                state,
                comp,
                sup=sup,
                deadline=900,
                ram_file=src.ram_file if path == "template" else None,
                mapped=path == "mapped-none",
            )
            src.close(sup)
            os.sync()
            t_rev = self.revived(sup, fill, state, comp)
            files = [state, ram_path(state)] if path == "template" else [state]
            return r["save_s"], t_rev, files

    def read_only_revive(self, state: Path, fill: str, mib: int, label: str) -> float:
        """Revive a template as the builder user from a store-like copy owned by nobody."""
        store = store_copy(state, self.tmp / f"store-{label}")
        spec = {
            "qemu": shutil.which(self.qemu),
            "accel": "tcg",
            "args": self.args(fill),
            "state": str(store),
            "mib": mib,
            "rundir": str(self.tmp / f"ro-{label}"),
            "reps": 5,
        }
        res = run_as(BUILDER, spec)
        assert res["copied"] is False and "readonly=on,rom=off" in res["argv"], res
        st = ram_path(store).stat()
        print(
            f"template revive, read-only store ({mib} MiB guest, {fill}; RAM file "
            f"0{st.st_mode & 0o777:o} owned by {pwd.getpwuid(st.st_uid).pw_name}, revived as "
            f"{BUILDER}): {', '.join(f'{t:.3f}' for t in res['times'])} s "
            f"(capability probe before them: {res['probe_s']:.3f} s)",
            flush=True,
        )
        shutil.rmtree(store.parent, ignore_errors=True)
        return median(res["times"])

    def template_of(self, fill: str, ref: Path | None, mib: int) -> Path:
        state = self.tmp / f"tpl-{fill}-{mib}" / "state"
        with Supervisor() as sup:
            if ref is None:
                vm = self.boot(sup, fill, mib=mib, template=True)
            else:
                vm = self.paused(sup, fill, ref, template=True)
            save(vm.client(), state, "template", sup=sup, deadline=900, ram_file=vm.ram_file)
            vm.close(sup)
        return state


def seed_save(vm: VM, state: Path) -> float:
    c = vm.client()
    t0 = time.monotonic()
    c.execute("stop")
    c.execute("migrate-set-parameters", {"max-bandwidth": 4095 << 20})
    c.execute("migrate", {"uri": f"exec:gzip -c > '{state}'"})
    while c.execute("query-migrate").get("status") != "completed":
        time.sleep(0.02)
    took = time.monotonic() - t0
    c.execute("quit")
    return took


def runs(xs: list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in xs)


def mib(n: float) -> str:
    return f"{n / 2**20:8.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--no-8g", action="store_true", help="skip the 8 GiB read-only revive")
    ap.add_argument("--no-revive-command", action="store_true", help="skip bench/revive.py")
    ap.add_argument("--ro-only", action="store_true", help="only the read-only template revives")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/snapshot.py: run as root (the read-only revive chowns files)")
    caps = probe_qemu(args.qemu)
    print(caps.describe(), flush=True)
    with tempfile.TemporaryDirectory(prefix="wingen-bench-") as tmpdir:
        tmp = Path(tmpdir)
        tmp.chmod(0o755)
        t0 = time.monotonic()
        b = Bench(tmp, args.qemu, args.mib)
        print(
            f"guest: {args.mib} MiB, TCG, Debian kernel + busybox initramfs "
            f"({b.initrd.stat().st_size / 2**20:.0f} MiB; with the real files "
            f"{b.initrd_real.stat().st_size / 2**20:.0f} MiB; made in "
            f"{time.monotonic() - t0:.1f} s)",
            flush=True,
        )
        figs: dict[tuple[str, str], Figures] = {}
        refs: dict[str, dict[bool, Path]] = {}
        for fill in () if args.ro_only else CONTENTS:
            refs[fill] = {tpl: b.reference(fill, tpl) for tpl in (False, True)}
            for path in PATHS:
                f = figs[(fill, path)] = Figures()
                for i in range(args.runs):
                    t_save, t_rev, files = b.run(fill, refs[fill], path)
                    f.save.append(t_save)
                    f.revive.append(t_rev)
                    if i == 0:
                        f.apparent = sum(p.stat().st_size for p in files)
                        f.on_disk = sum(p.stat().st_blocks * 512 for p in files)
                        f.nar = nar_size(files)
                    shutil.rmtree(files[0].parent)
                print(
                    f"{fill:6} {path:11} save {median(f.save):7.2f} s  "
                    f"revive {median(f.revive):6.3f} s  apparent {mib(f.apparent)} MiB  "
                    f"on disk {mib(f.on_disk)} MiB  NAR {mib(f.nar)} MiB  "
                    f"[save {runs(f.save)}; revive {runs(f.revive)}]",
                    flush=True,
                )
            for tpl, ref in refs[fill].items():
                if fill != "real" or not tpl:
                    shutil.rmtree(ref.parent)
        for comp in () if args.ro_only else ("none", "zstd"):
            print(f"{comp}: pipe vs mapped-ram, save/revive medians (s):", end="")
            for fill in CONTENTS:
                p, m = figs[(fill, f"pipe-{comp}")], figs[(fill, f"mapped-{comp}")]
                print(
                    f"  {fill} {median(p.save):.2f}/{median(p.revive):.2f} vs "
                    f"{median(m.save):.2f}/{median(m.revive):.2f}",
                    end="",
                )
            print(flush=True)
        if "real" in refs:
            # For the record: the real-content guest's QEMU also reads its 84 MiB -initrd
            # (the payload) at start, so it revives slower than the same RAM size booted light.
            tpl_real = b.template_of("real", refs["real"][True], args.mib)
            shutil.rmtree(refs["real"][True].parent)
            b.read_only_revive(tpl_real, "real", args.mib, "real")
        # The figures: the same light guest at 2 and 8 GiB, one after the other.
        state = b.template_of("zero", None, args.mib)
        ro_2g = b.read_only_revive(state, "zero", args.mib, "2g")
        shutil.rmtree(state.parent)
        ro_8g = float("nan")
        if not args.no_8g:
            state = b.template_of("zero", None, 8192)  # one 8 GiB guest at a time, freed at once
            ro_8g = b.read_only_revive(state, "zero", 8192, "8g")
            shutil.rmtree(state.parent)
        to_command = float("nan")
        if not (args.no_revive_command or args.ro_only):
            to_command = revive.measure(args.runs, 'compression = "zstd"')
        print(f"template_revive_ro_s={ro_2g:.3f}")
        print(f"template_revive_ro_8g_s={ro_8g:.3f}")
        print(f"revive_to_command_s={to_command:.2f}")
        if args.ro_only:
            return
        seed, ours = figs[("real", "seed-gzip")], figs[("real", "pipe-zstd")]
        print("last line: real-content guest, pipe-zstd (zstd -2 -T0) vs seed-gzip, medians")
        print(
            f"save_speedup={median(seed.save) / median(ours.save):.1f} "
            f"restore_speedup={median(seed.revive) / median(ours.revive):.1f} "
            f"size_ratio={ours.apparent / seed.apparent:.3f}"
        )


if __name__ == "__main__":
    main()
