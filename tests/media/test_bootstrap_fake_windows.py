"""bootstrap.sh run by a real bash, chrooted into a FAKE Cygwin root: Windows cannot run here, so
cygrunsrv, ssh-host-config, cygpath and the Windows tools (net.exe, netsh.exe, reg.exe,
shutdown.exe) are stand-ins that keep state and log their arguments; every other command is a
busybox applet. The chroot makes any command the script needs and the root lacks an error
(chroot and mknod need root, as the suite has here and in CI).
What is checked is the script's own logic: the sshd service name is found, not assumed; a failing
sshd ends the script non-zero with a clear line on COM1; the rest runs only after sshd is up.

Behaviour of the real tools, as the stand-ins copy it: current ssh-host-config installs the
service as `cygsshd` and prints "net start cygsshd" (older ones: `sshd`); `cygrunsrv -L` lists
installed services one a line; `cygrunsrv --query NAME` prints "Current State : Running" among
other lines and fails for an unknown service."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wingen.runtime.contract import INSTALL_DONE

from .helpers import render_files, windows_cfg

FAKES = {
    "cygpath": 'case $1 in -S) echo /win ;; -u) echo "$2" ;; *) exit 2 ;; esac',
    "ssh-host-config": r"""
echo "ssh-host-config $*" >> /state/log
[ -e /state/install-none ] && exit 0
name=$(cat /state/install-as)
echo "$name" >> /state/services
echo "# default sshd_config" > /etc/sshd_config
[ -e /state/starts-it ] && echo "$name" >> /state/running
echo "*** Info: Host configuration finished. Have fun! (net start $name)"
""",
    "cygrunsrv": r"""
echo "cygrunsrv $*" >> /state/log
known() { grep -x "$1" /state/services > /dev/null 2>&1; }
case $1 in
  -L|--list) cat /state/services 2>/dev/null ;;
  -Q|--query)
    known "$2" || { echo "cygrunsrv: Error querying a service: Win32 error 1060" >&2; exit 1; }
    echo "Service             : $2"
    if grep -x "$2" /state/running > /dev/null 2>&1; then s=Running; else s=Stopped; fi
    echo "Current State       : $s"
    # more lines after the state, enough to fill a pipe: a reader that quits early kills us
    i=0
    while [ $i -lt 3000 ]; do echo "Command             : /usr/sbin/sshd -D $i"; i=$((i+1)); done
    ;;
  -S|--start)
    known "$2" || exit 1
    if [ -e /state/broken ]; then
      echo "cygrunsrv: Error starting a service: Win32 error 1067" >&2; exit 1
    fi
    echo "$2" >> /state/running ;;
  *) exit 1 ;;
esac
""",
    "sleep": "exit 0",
}
WINDOWS_TOOLS = {
    "net.exe": r"""echo "net $*" >> /state/log
case $1 in user) [ "$#" -gt 2 ] || grep -x "$2" /state/users > /dev/null || exit 2 ;; esac""",
    "netsh.exe": 'echo "netsh $*" >> /state/log',
    "reg.exe": 'echo "reg $*" >> /state/log',
    "shutdown.exe": 'echo "shutdown $*" >> /state/log',
}
APPLETS = ("sh", "mkdir", "cp", "chmod", "chown", "od", "tr", "grep", "seq", "sync", "cat")
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIwingenTestKeyOnly test@wingen\n"


def _copy_with_libs(program: str, root: Path) -> None:
    """A host program and the shared libraries it loads, at the same paths inside root."""
    libs = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    paths = [program] + [w for w in libs.split() if w.startswith("/")]
    for path in paths:
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), dest)


def _script(root: Path, body: str, where: str) -> None:
    path = root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def fake_cygwin(tmp: Path, *, install_as: str = "cygsshd", flags: tuple[str, ...] = ()) -> Path:
    root = tmp / "root"
    _copy_with_libs("/bin/bash", root)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for name, body in FAKES.items():
        _script(root, body, f"usr/fake/{name}")
    for name, body in WINDOWS_TOOLS.items():
        _script(root, body, f"win/{name}")
    for d in ("etc", "home", "tmp", "var/log", "state", "cd/wingen", "dev", "nix"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nwingen:x:1000:1000::/home/wingen:/bin/bash\n"
    )
    (root / "etc/group").write_text("root:x:0:\nwingen:x:1000:\n")
    os.mknod(root / "dev/null", 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(root / "dev/urandom", 0o666 | 0o020000, os.makedev(1, 9))
    (root / "dev/ttyS0").write_text("")  # COM1, as the host's serial log would show it
    (root / "state/install-as").write_text(install_as + "\n")
    (root / "state/users").write_text("wingen\n")
    for flag in flags:
        (root / "state" / flag).write_text("")
    script = render_files(windows_cfg())["windows/wingen/bootstrap.sh"]
    (root / "cd/wingen/bootstrap.sh").write_text(script)
    (root / "cd/wingen/authorized_keys").write_text(KEY)
    return root


def run_bootstrap(root: Path) -> tuple[int, list[str], list[str]]:
    """Exit code, the COM1 lines, the stand-ins' log."""
    proc = subprocess.run(
        [CHROOT, str(root), "/bin/bash", "/cd/wingen/bootstrap.sh", "/cd/wingen"],
        env={"PATH": "/usr/fake:/bin", "HOME": "/home/wingen"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    com1 = (root / "dev/ttyS0").read_text().replace("\r\n", "\n").splitlines()
    log = (root / "state/log").read_text().splitlines()
    return proc.returncode, com1, log


@pytest.mark.parametrize(("install_as", "flags"), [("cygsshd", ()), ("sshd", ()),
                                                    ("cygsshd", ("starts-it",))])  # fmt: skip
def test_service_name_is_found_and_bootstrap_finishes(
    tmp_path: Path, install_as: str, flags: tuple[str, ...]
) -> None:
    root = fake_cygwin(tmp_path, install_as=install_as, flags=flags)
    code, com1, log = run_bootstrap(root)
    assert code == 0, (com1, log)
    assert com1[0] == "wingen: bootstrap start"
    assert f"wingen: sshd running (service {install_as})" in com1
    assert com1[-2:] == ["wingen: bootstrap done; powering off", INSTALL_DONE]  # the last line
    assert "ssh-host-config --yes" in log  # no --user: no cyg_server account on current Cygwin
    starts = [line for line in log if line.startswith("cygrunsrv -S") or "--start" in line]
    assert starts == ([] if flags else [f"cygrunsrv --start {install_as}"])
    assert log[-1] == "shutdown -s -t 5"
    assert (root / "home/wingen/.ssh/authorized_keys").read_text() == KEY
    assert "PasswordAuthentication no" in (root / "etc/sshd_config").read_text()
    assert (root / "nix/store").is_dir() and (root / "tmp/xchg").is_dir()


@pytest.mark.parametrize(
    ("flags", "says"),
    [(("broken",), "wingen: sshd (service cygsshd) is not running after 30 s"),
     (("install-none",), "wingen: ssh-host-config installed no sshd service")],
)  # fmt: skip
def test_sshd_not_starting_ends_with_a_line_on_com1(
    tmp_path: Path, flags: tuple[str, ...], says: str
) -> None:
    code, com1, log = run_bootstrap(fake_cygwin(tmp_path, flags=flags))
    assert code != 0
    assert com1[-1].startswith(says), com1
    assert not any(line.startswith(("reg ", "shutdown ")) for line in log), log
