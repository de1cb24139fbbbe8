"""The snapshot bench's guest: Debian's kernel (tests/e2e/setup.sh) booting a busybox initramfs,
with one of three memory contents, chosen on the kernel command line (`wingen_fill=`):

  * zero:   the guest just after boot: the kernel and its data, the rest of RAM never touched;
  * real:   after boot, a tarball of this machine's real files (Python's stdlib, C headers, GCC's
            binaries, Perl modules) is unpacked into tmpfs, then every file is read (md5sum):
            the page cache holds source text, ELF binaries and the compressed tarball itself,
            as after unpacking and building a source package.  No compiler runs in the guest
            (busybox only): the compiled content is the host's compiler and its libraries.
  * random: after boot, RANDOM_MIB of /dev/urandom written into tmpfs (encrypted or
            compressed data: the worst case for every compressor).
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = "WINGEN-BENCH-READY"
REAL_TREES = [
    "/usr/lib/python3.11",
    "/usr/include",
    "/usr/lib/gcc/x86_64-linux-gnu/12",
    "/usr/share/perl",
]
RANDOM_MIB = 768

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o size=90% tmpfs /work
fill=$(sed -n 's/.*wingen_fill=\\([a-z]*\\).*/\\1/p' /proc/cmdline)
case "$fill" in
real)
    tar -xzf /payload.tar.gz -C /work
    find /work -type f -exec md5sum {{}} + >/work/sums
    ;;
random)
    dd if=/dev/urandom of=/work/random bs=1M count={RANDOM_MIB} 2>/dev/null
    ;;
esac
sync
echo "{READY} $fill $(sed -n 's/^MemFree: *//p' /proc/meminfo)"
while :; do sleep 3600; done
"""


def kernel() -> Path:
    """Debian's kernel, unpacked into the e2e cache (downloaded once, never installed)."""
    out = subprocess.run(
        ["sh", str(ROOT / "tests" / "e2e" / "setup.sh"), "debian"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return next((Path(out.stdout.strip()) / "boot").glob("vmlinuz-*"))


def initramfs(dest: Path, *, payload: bool) -> Path:
    """Build the initramfs (busybox, init and, with payload, the real-files tarball) as an
    uncompressed cpio.  The zero and random guests boot without the payload."""
    stage = dest.with_suffix(".d")
    for sub in ("bin", "proc", "sys", "work", "dev"):
        (stage / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", stage / "bin" / "busybox")
    (stage / "init").write_text(INIT)
    (stage / "init").chmod(0o755)
    if payload:
        with tarfile.open(stage / "payload.tar.gz", "w:gz", compresslevel=6) as tar:
            for tree in REAL_TREES:
                tar.add(tree, arcname=tree.lstrip("/"))
    names = subprocess.run(
        ["find", ".", "-mindepth", "1"], cwd=stage, stdout=subprocess.PIPE, check=True
    ).stdout
    with dest.open("wb") as out:
        subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
            cwd=stage,
            input=names,
            stdout=out,
            check=True,
        )
    shutil.rmtree(stage)
    return dest


def qemu_args(vmlinuz: Path, initrd: Path, fill: str) -> list[str]:
    return [
        "-kernel",
        str(vmlinuz),
        "-initrd",
        str(initrd),
        "-append",
        f"console=ttyS0 quiet rdinit=/init wingen_fill={fill}",
    ]
