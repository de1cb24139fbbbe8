"""A remote Nix builder on this machine, for the dispatch test: Debian's sshd on a free port of
127.0.0.1, with its own host key and one authorized key, serving `nix-daemon --stdio` over
`ssh-ng://` against a store of its own.

"Remote" must differ from local in what matters: the builder's store is a chroot store (its own
/nix/store at <dir>/store/nix/store, own database and logs), so a path reaches the local store only
by being copied back, as from another machine. Nothing here touches the system's sshd or its
config; the builder's own nix.conf reaches its sessions through sshd's SetEnv, the way a real
builder has its own /etc/nix."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .nixdaemon import nix_conf, start_service, stop_service

# Not "localhost": Nix 2.8 runs the remote command with a local `bash -c` for exactly that host
# name, without SSH (libstore/ssh.cc, fakeSSH).
HOST = "127.0.0.1"
URI = f"ssh-ng://root@{HOST}"


@dataclass
class SshBuilder:
    proc: subprocess.Popen[bytes]
    store: Path  # the builder's chroot store root (its store dir is store/nix/store)
    machine: str  # the `builders` line naming it
    sshopts: str  # NIX_SSHOPTS for the daemon whose build hook connects to it

    def stop(self) -> None:
        """Stop sshd by its own pid; drop the builder's store (root-owned, read-only dirs)."""
        stop_service(self.proc)
        shutil.rmtree(self.store, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def keygen(path: Path) -> str:
    """A new ed25519 key pair at path; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "wingen-e2e", "-f", str(path)],
        check=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def start_builder(
    dir: Path, kernel_root: Path, features: Sequence[str], mandatory: str
) -> SshBuilder:
    """sshd for a builder that offers `features` and takes only derivations that require
    `mandatory`, with its store under dir/store."""
    dir.mkdir(mode=0o700)
    host_pub = keygen(dir / "host_key")
    (dir / "authorized_keys").write_text(keygen(dir / "client_key") + "\n")
    store = dir / "store"
    conf = nix_conf(
        dir / "nix-conf", kernel_root, system_features=features, extra={"store": str(store)}
    )
    # sshd's privilege separation dir; systemd creates it on a booted machine.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = free_port()
    (dir / "sshd_config").write_text(
        f"Port {port}\nListenAddress {HOST}\nHostKey {dir / 'host_key'}\n"
        f"AuthorizedKeysFile {dir / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        # Its key files are root's, but under /tmp (world-writable), which StrictModes refuses.
        "StrictModes no\n"
        f"PidFile {dir / 'sshd.pid'}\nSetEnv NIX_CONF_DIR={conf}\n"
    )
    log = dir / "sshd.log"
    sshd = ["/usr/sbin/sshd", "-D", "-e", "-f", str(dir / "sshd_config")]
    proc = start_service(sshd, log, lambda: b"Server listening on" in log.read_bytes())
    host_key = base64.b64encode(host_pub.rsplit(" ", 1)[0].encode()).decode()
    return SshBuilder(
        proc,
        store,
        f"{URI} x86_64-linux {dir / 'client_key'} 1 1 {','.join(features)} {mandatory} {host_key}",
        # The port, and the host key looked up under the bare host name Nix writes it for.
        f"-p {port} -oHostKeyAlias={HOST} -oBatchMode=yes",
    )
