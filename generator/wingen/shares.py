"""The controller's Samba shares: the one list the controller's smb.conf, the guests' mapping
scripts, the Windows bootstrap and the runtime's exchange-dir paths are all rendered from."""

from __future__ import annotations

# (share name, where the guest mounts it). The exchange dir (`xchg`) is where the runtime hands
# the guest its command, environment and files, and where the controller writes results.
SHARES = (("nixstore", "/nix/store"), ("xchg", "/tmp/xchg"))
# The drive letter Windows maps each share to before Cygwin mounts it.
DRIVE_LETTERS = {"nixstore": "S:", "xchg": "X:"}
XCHG = dict(SHARES)["xchg"]
