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

from wingen.runtime.contract import FAILED, INSTALL_DONE, failure_reason

from .helpers import render_files, windows_cfg

FAKES = {
    "cygpath": 'case $1 in -S) echo /win ;; -u) echo "$2" ;; *) exit 2 ;; esac',
    # As openssh-portable's contrib/cygwin/ssh-host-config: every warning is counted
    # (`let ++warning_cnt`), a service that did not install is one more ("Installing sshd as a
    # service failed!", csih_error_recoverable), and the script ends `exit $warning_cnt`.
    "ssh-host-config": r"""
echo "ssh-host-config $*" >> /state/log
warning_cnt=0
i=0
while [ $i -lt "$(cat /state/warnings 2>/dev/null || echo 0)" ]; do
  echo "*** Warning: Can't set permissions on /var/empty!"
  warning_cnt=$((warning_cnt + 1)); i=$((i + 1))
done
if [ -e /state/install-none ]; then
  echo "*** ERROR: Installing sshd as a service failed!"
  warning_cnt=$((warning_cnt + 1))
else
  name=$(cat /state/install-as)
  echo "$name" >> /state/services
  echo "# default sshd_config" > /etc/sshd_config
  [ -e /state/starts-it ] && echo "$name" >> /state/running
  echo "*** Info: The sshd service has been installed. (net start $name)"
fi
if [ $warning_cnt -eq 0 ]; then
  echo "*** Info: Host configuration finished. Have fun!"
else
  echo "*** Warning: Host configuration exited with $warning_cnt errors or warnings!"
fi
exit $warning_cnt
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
    # net.exe exits 2 on any error. `net user NAME PASSWORD /add` is refused (NERR 2245) where the
    # policy "Password must meet complexity requirements" is on (Server): 6 characters or more,
    # three of upper, lower, digit, other, not the account name (wingen/winpolicy.py, its source).
    "net.exe": r"""echo "net $*" >> /state/log
case $1 in
  user)
    if [ "$#" -eq 2 ]; then
      grep -x "$2" /state/users > /dev/null || { echo "The user name could not be found."; exit 2; }
    elif [ "$4" = /add ]; then
      n=0
      case $3 in *[A-Z]*) n=$((n + 1)) ;; esac
      case $3 in *[a-z]*) n=$((n + 1)) ;; esac
      case $3 in *[0-9]*) n=$((n + 1)) ;; esac
      case $3 in *[!A-Za-z0-9]*) n=$((n + 1)) ;; esac
      lower=$(echo "$3" | tr A-Z a-z); name=$(echo "$2" | tr A-Z a-z)
      case $lower in *"$name"*) n=0 ;; esac
      [ ${#3} -ge 6 ] || n=0
      if [ -e /state/complexity ] && [ $n -lt 3 ]; then
        echo "The password does not meet the password policy requirements."
        echo "More help is available by typing NET HELPMSG 2245."
        exit 2
      fi
      echo "$2" >> /state/users
    fi ;;
esac""",
    "netsh.exe": 'echo "netsh $*" >> /state/log',
    "reg.exe": 'echo "reg $*" >> /state/log',
    "shutdown.exe": 'echo "shutdown $*" >> /state/log',
    "WindowsPowerShell/v1.0/powershell.exe": 'echo "powershell $1 $2 $3" >> /state/log',
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


def fake_cygwin(
    tmp: Path,
    *,
    install_as: str = "cygsshd",
    flags: tuple[str, ...] = (),
    users: str = "wingen\n",
    warnings: int = 0,
) -> Path:
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
    (root / "state/users").write_text(users)
    (root / "state/warnings").write_text(f"{warnings}\n")
    for flag in flags:
        (root / "state" / flag).write_text("")
    script = render_files(windows_cfg())["windows/wingen/bootstrap.sh"]
    (root / "cd/wingen/bootstrap.sh").write_text(script)
    (root / "cd/wingen/authorized_keys").write_text(KEY)
    return root


def run_bootstrap(
    root: Path, args: tuple[str, ...] = ("/cd/wingen",)
) -> tuple[int, list[str], list[str]]:
    """Exit code, the COM1 lines, the stand-ins' log."""
    proc = subprocess.run(
        [CHROOT, str(root), "/bin/bash", "/cd/wingen/bootstrap.sh", *args],
        env={"PATH": "/usr/fake:/bin", "HOME": "/home/wingen"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    com1 = (root / "dev/ttyS0").read_text().replace("\r\n", "\n").splitlines()
    log_file = root / "state/log"
    log = log_file.read_text().splitlines() if log_file.exists() else []
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
    [(("broken",), "sshd (service cygsshd) is not running after 30 s"),
     (("install-none",), "ssh-host-config installed no sshd service")],
)  # fmt: skip
def test_sshd_not_starting_ends_with_a_failure_line_on_com1(
    tmp_path: Path, flags: tuple[str, ...], says: str
) -> None:
    code, com1, log = run_bootstrap(fake_cygwin(tmp_path, flags=flags))
    assert code != 0
    assert com1[-1].startswith(f"{FAILED} {says}"), com1
    assert failure_reason(com1[-1]) is not None
    assert INSTALL_DONE not in com1
    assert not any(line.startswith(("reg ", "shutdown ")) for line in log), log


def test_ssh_host_config_warnings_leave_the_decision_to_the_service_checks(tmp_path: Path) -> None:
    """ssh-host-config exits with its warning count; sshd is installed and runs all the same."""
    code, com1, log = run_bootstrap(fake_cygwin(tmp_path, warnings=2))
    assert code == 0, com1
    assert (
        "wingen: ssh-host-config exited 2 (its warnings are in /var/log/wingen-bootstrap.log)"
        in com1
    )
    assert com1[-1] == INSTALL_DONE
    assert log[-1] == "shutdown -s -t 5"


def test_a_password_the_policy_refuses_ends_with_a_failure_line(tmp_path: Path) -> None:
    """No account yet (winnt.sif's case), and a net.exe enforcing complexity, as Server does."""
    code, com1, log = run_bootstrap(fake_cygwin(tmp_path, users="", flags=("complexity",)))
    assert code == 1
    assert com1[-1].startswith(f"{FAILED} net user wingen /add failed"), com1
    assert "windows.account.password" in com1[-1]
    assert not any(line.startswith("ssh-host-config") for line in log), log


def test_any_failing_command_ends_with_a_failure_line(tmp_path: Path) -> None:
    root = fake_cygwin(tmp_path)
    (root / "win/reg.exe").write_text("#!/bin/sh\necho 'ERROR: Access is denied.'\nexit 1\n")
    code, com1, _ = run_bootstrap(root)
    assert code == 1
    assert com1[-1].startswith(f"{FAILED} bootstrap failed at line "), com1
    assert [line for line in com1 if line.startswith(FAILED)] == [com1[-1]]  # one, the last
    assert INSTALL_DONE not in com1


def test_no_argument_ends_with_a_failure_line(tmp_path: Path) -> None:
    code, com1, _ = run_bootstrap(fake_cygwin(tmp_path), args=())
    assert code == 1
    assert com1 == [f"{FAILED} usage: bootstrap.sh DIR-OF-THIS-SCRIPT (install.cmd passes it)"]


def test_long_paths_on_and_defender_off_best_effort(tmp_path: Path) -> None:
    root = fake_cygwin(tmp_path)
    code, com1, log = run_bootstrap(root)
    assert code == 0, com1
    assert any("FileSystem /v LongPathsEnabled /t REG_DWORD /d 1 /f" in line for line in log), log
    assert "powershell -NoProfile -NonInteractive -Command" in log
    script = (root / "cd/wingen/bootstrap.sh").read_text()
    assert "Set-MpPreference -DisableRealtimeMonitoring $true" in script
    assert "Uninstall-WindowsFeature Windows-Defender-Features, Windows-Defender" in script
    # Windows 7 has no Set-MpPreference: a failing PowerShell leaves the install going
    (root / "win/WindowsPowerShell/v1.0/powershell.exe").write_text("#!/bin/sh\nexit 1\n")
    (root / "dev/ttyS0").write_text("")
    (root / "state/services").unlink()
    (root / "state/running").unlink(missing_ok=True)
    code, com1, _ = run_bootstrap(root)
    assert code == 0 and com1[-1] == INSTALL_DONE
