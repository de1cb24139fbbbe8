"""The controller's Samba shares: the one list the controller's smb.conf and 9p mounts, the
guests' mapping scripts, the Windows bootstrap and the runtime's exchange-dir paths are all
rendered from."""

from __future__ import annotations

from .runtime.contract import GUEST_XCHG

# (share name, where the guest mounts it). The exchange dir (`xchg`) is where the runtime hands
# the guest its command, environment and files, and where the controller writes results: its
# path is the runtime's (contract.py), which writes it into the files it hands over.
SHARES = (("nixstore", "/nix/store"), ("xchg", GUEST_XCHG))
# The drive letter Windows maps each share to before Cygwin mounts it.
DRIVE_LETTERS = {"nixstore": "S:", "xchg": "X:"}
XCHG = dict(SHARES)["xchg"]
# In the controller: (share name, the host's 9p tag, where it is mounted and served from, cached,
# writable), in mount order. Only xchg is writable: the store is read-only at QEMU's 9p export
# (default.nix.j2), at the controller's mount and at Samba, so no guest can change a store path,
# sandboxed or not. A build's outputs reach the store as an archive in xchg (runtime/outputs.py).
# The host's store goes over the controller's own /nix/store (its root image):
# Samba follows a symlink on the server and refuses one that leaves the share, so an absolute
# /nix/store/… link in the store resolves only if the share is at /nix/store. It goes last, so the
# mount program still runs from the image; every path the controller runs is in the host's store
# too. xchg is written from both sides: uncached, or reads go stale (nixpkgs #82258).
CONTROLLER_SHARES = (
    ("xchg", "xchg", XCHG, False, True),
    ("nixstore", "store", "/nix/store", True, False),
)
# Where a build's outputs are made in each guest, on its own disk, before they are packed:
# Linux: as NixOS's qemu-vm.nix makes a writable store (virtualisation.writableStore), the share
# (read-only) at LINUX_STORE_LOWER under an overlay on /nix/store whose upper layer is
# LINUX_STORE_UPPER; what the builder creates there outside its outputs fails the build.
# Windows: each output path is a Cygwin mount of a directory under WINDOWS_OUTPUTS (on C:), and
# the rest of /nix/store is the read-only share.
LINUX_STORE_LOWER = "/nix/.ro-store"
LINUX_STORE_UPPER = "/nix/.rw-store"
WINDOWS_OUTPUTS = "/wingen-out"
# A read-only, empty share the Linux guest keeps mounted across the save, so that after a revive
# its SMB session is already set up and mapping the shares above costs one tree connect each
# (Linux's cifs shares a session between mounts of one server with the same options).
HOLD_SHARE = ("wingen-hold", "/srv/hold", "/run/wingen-hold")  # (name, controller, guest path)
# The Linux guest's mount options, the same for every share (a different one would not share the
# session): Samba's guest, SMB 3.0, and an echo every second so a dead session is seen quickly.
CIFS_OPTIONS = "user=guest,pass=,vers=3.0,echo_interval=1"
