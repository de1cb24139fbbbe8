"""guest-build.sh as rendered for Windows, run by busybox sh chrooted into a FAKE Cygwin root:
Windows cannot run here, so `cygpath` and Cygwin's `mount`/`umount` are stand-ins that log their
arguments (the real mount table makes each output path a directory on C:, Cygwin User's Guide,
"The Cygwin Mount Table"; here the builder writes into the root's own /nix/store). tar is GNU tar,
as Cygwin's is. What is checked is the script's own logic and its archive, up to the runtime's
unpack: each output mounted before the builder runs, the builder's code and phase in the result,
the archive holding what the builder made (links, modes, reserved names) and nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wingen.runtime.outputs import unpack

from .helpers import render_files, windows_cfg
from .test_bootstrap_fake_windows import CHROOT, _copy_with_libs, _script

OUT = "/nix/store/aaaa-demo"
DEV = "/nix/store/bbbb-demo-dev"
FAKES = {
    "cygpath": 'case $1 in -m) echo "C:/cygwin64$2" ;; *) exit 2 ;; esac',
    # Cygwin's mount -f takes a Windows path that need not exist (the fake only logs; a mount
    # that fails is one the state says so).
    "mount": '[ ! -e /state/mount-fails ] || exit 1; echo "mount $*" >> /state/log',
    "umount": 'echo "umount $*" >> /state/log; exit 1',  # nothing was mounted there yet
}
APPLETS = ("sh", "mkdir", "rm", "grep", "printf", "echo", "cat", "chmod", "ln", "touch")
BUILDER = r"""
mkdir -p "$out/bin"
printf '#!/bin/sh\necho hi\n' > "$out/bin/tool"
chmod 755 "$out/bin/tool"
ln -s bin/tool "$out/rel"
ln -s "$out/bin/tool" "$out/abs"
for c in : '*' '?' '"' '<' '>' '|'; do echo "$c" > "$out/a${c}b"; done
echo dev > "$dev"
echo "the builder ran with $(cat /state/log | grep -c '^mount ') outputs mounted"
exit "${CODE:-0}"
"""


def fake_cygwin_build(tmp: Path, code: int = 0, flags: tuple[str, ...] = ()) -> Path:
    root = tmp / "root"
    _copy_with_libs(shutil.which("tar") or "/bin/tar", root)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for name, body in FAKES.items():
        _script(root, body, f"usr/bin/{name}")
    for d in ("tmp/xchg/wingen", "nix/store", "state", "dev", "build"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.mknod(root / "dev/null", 0o666 | 0o020000, os.makedev(1, 3))
    for flag in flags:
        (root / "state" / flag).write_text("")
    files = render_files(windows_cfg())
    control = root / "tmp/xchg/wingen"
    (control / "build.sh").write_text(files["scripts/guest-build.sh"])
    (control / "output-paths").write_text(f"{OUT}\n{DEV}\n")
    (control / "builder").write_text("exec /bin/sh /build/builder.sh\n")
    (root / "build/builder.sh").write_text(BUILDER)
    (root / "tmp/xchg/saved-env").write_text(
        f"export out='{OUT}' dev='{DEV}' CODE='{code}' outputs='out dev'\n"
    )
    return root


def run_build(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROOT, str(root), "/bin/sh", "/tmp/xchg/wingen/build.sh"],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_outputs_are_mounted_built_and_packed(tmp_path: Path) -> None:
    root = fake_cygwin_build(tmp_path)
    proc = run_build(root)
    assert proc.returncode == 0, proc.stderr
    control = root / "tmp/xchg/wingen"
    assert (control / "guest-result").read_text() == "finished 0\n"
    assert "the builder ran with 2 outputs mounted" in proc.stdout
    log = (root / "state/log").read_text().splitlines()
    mounts = [line for line in log if line.startswith("mount ")]
    assert mounts == [
        f"mount -f C:/cygwin64/wingen-out/aaaa-demo {OUT}",
        f"mount -f C:/cygwin64/wingen-out/bbbb-demo-dev {DEV}",
    ]
    store = tmp_path / "store"
    store.mkdir()
    outputs = {"out": store / "aaaa-demo", "dev": store / "bbbb-demo-dev"}
    unpack(control / "outputs.tar", outputs)
    out = outputs["out"]
    assert (out / "rel").readlink() == Path("bin/tool")
    assert (out / "abs").readlink() == Path(OUT) / "bin" / "tool"
    assert (out / "bin" / "tool").stat().st_mode & 0o111 == 0o111
    for c in ':*?"<>|':
        assert (out / f"a{c}b").read_text() == f"{c}\n"
    assert outputs["dev"].read_text() == "dev\n"


@pytest.mark.parametrize(
    ("code", "flags", "result"),
    [(7, (), "builder 7"), (97, (), "builder 97"), (0, ("mount-fails",), "setup 98")],
)
def test_the_result_names_the_phase_and_its_code(
    tmp_path: Path, code: int, flags: tuple[str, ...], result: str
) -> None:
    root = fake_cygwin_build(tmp_path, code, flags)
    proc = run_build(root)
    control = root / "tmp/xchg/wingen"
    assert (control / "guest-result").read_text() == result + "\n"
    assert proc.returncode == int(result.split()[1])
    assert not (control / "outputs.tar").exists()
