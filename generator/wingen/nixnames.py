"""The nixpkgs names generated Nix may use: the rendered expression is a function of exactly these.

Only long-stable top-level names, so that nixpkgs from any recent year satisfies them and so that a
small stand-in package set (nix/standin, for offline tests) can satisfy the same list."""

from __future__ import annotations

NIXPKGS_NAMES: tuple[str, ...] = (
    "runCommand",
    "writeText",
    "writeScript",
    "requireFile",
    "fetchurl",
    "bash",
    "coreutils",
    "busybox",
    "python3",
    "qemu",
    "vde2",
    "samba",
    "dropbear",
    "openssh",
    "zstd",
    "gzip",
    "dosfstools",
    "mtools",
    "xorriso",
    "cpio",
    "linux",
)
