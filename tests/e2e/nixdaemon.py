"""Nix as users run it, for the e2e suite: a nix-daemon of the suite's own, sandboxed builds, and
unprivileged build users (the `nixbld` group of Debian's nix-setup-systemd).

The daemon serves the machine's /nix/store, which other suites use directly as root at the same
time, so nothing here touches /etc/nix or the default socket: the config lives in a temp
NIX_CONF_DIR and the daemon listens on its own NIX_DAEMON_SOCKET_PATH (Nix reads that variable
in both the daemon and the client: libstore/globals.cc)."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

BUILD_GROUP = "nixbld"

# The Debian tool directories the stand-in package set links to (nix/standin).
DEBIAN_TOOL_DIRS = ("/bin", "/usr", "/lib", "/lib64", "/etc/alternatives")


def host_python_dirs() -> list[str]:
    """Where the stand-in's hostPython (this interpreter) lives, unless under a Debian tool dir."""
    dirs = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix)}
    return sorted(d for d in dirs if not any(d.startswith(t + "/") for t in DEBIAN_TOOL_DIRS))


def nix_conf(
    conf_dir: Path,
    kernel_root: Path,
    *,
    system_features: Iterable[str],
    extra: dict[str, str] | None = None,
) -> Path:
    """Write conf_dir/nix.conf, sandboxed: the sandbox sees only what the stand-in needs besides
    the closure. Returns conf_dir (for NIX_CONF_DIR)."""
    paths = [*DEBIAN_TOOL_DIRS, str(kernel_root), *host_python_dirs()]
    settings = {
        "sandbox": "true",
        "extra-sandbox-paths": " ".join(paths),
        "build-users-group": BUILD_GROUP,
        "system-features": " ".join(system_features),
        "substituters": "",
        "experimental-features": "nix-command flakes",
        **(extra or {}),
    }
    conf_dir.mkdir(parents=True)
    (conf_dir / "nix.conf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    return conf_dir


def single_user_env(conf_dir: Path) -> dict[str, str]:
    """The other way to run Nix: as root on the store directly, no sandbox, no build users."""
    conf_dir.mkdir()
    (conf_dir / "nix.conf").write_text(
        "sandbox = false\nbuild-users-group =\nsubstituters =\n"
        "experimental-features = nix-command flakes\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("NIX_")}
    return {**base, "NIX_CONF_DIR": str(conf_dir)}


def ensure_build_users(count: int = 10) -> list[str]:
    """The build users; created as Debian's nix-setup-systemd postinst does when missing."""
    try:
        members = grp.getgrnam(BUILD_GROUP).gr_mem
    except KeyError:
        members = []
    if members:
        return list(members)
    subprocess.run(["groupadd", "--force", "--system", BUILD_GROUP], check=True)
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    for n in range(1, count + 1):
        user = f"{BUILD_GROUP}{n}"
        if subprocess.run(["id", user], capture_output=True, check=False).returncode != 0:
            subprocess.run(
                ["useradd", "--system", "--comment", f"Nix build user {n}", "--home-dir",
                 "/var/empty", "--gid", BUILD_GROUP, "--groups", BUILD_GROUP, "--no-user-group",
                 "--shell", nologin, user],
                check=True,
            )  # fmt: skip
    return list(grp.getgrnam(BUILD_GROUP).gr_mem)


def start_service(
    cmd: list[str], log: Path, ready: Callable[[], bool], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-running process logging to `log`; return once `ready()` holds (20 s)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {log.read_text()}")
        if ready():
            return proc
        time.sleep(0.1)
    stop_service(proc)
    raise RuntimeError(f"{cmd[0]} was not ready within 20 s: {log.read_text()}")


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its own pid, SIGKILL if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Daemon:
    """A running nix-daemon; `env` is a client environment that talks to it."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    def stop(self) -> None:
        """By its own pid; its per-connection workers have ended with their clients by then."""
        stop_service(self.proc)


def start_daemon(conf_dir: Path, workdir: Path, daemon_env: dict[str, str] | None = None) -> Daemon:
    """Start nix-daemon with the nix.conf in `conf_dir`, on a socket in `workdir`."""
    sock = workdir / "daemon-socket" / "socket"
    base = {k: v for k, v in os.environ.items() if not k.startswith("NIX_")}
    common = {**base, "NIX_CONF_DIR": str(conf_dir), "NIX_DAEMON_SOCKET_PATH": str(sock)}
    client = {**common, "NIX_REMOTE": "daemon"}

    def answers() -> bool:
        ping = ["nix", "store", "ping"]
        return (
            sock.exists() and subprocess.run(ping, env=client, capture_output=True).returncode == 0
        )

    log = workdir / "nix-daemon.log"
    proc = start_service(["nix-daemon"], log, answers, {**common, **(daemon_env or {})})
    return Daemon(proc, client)
