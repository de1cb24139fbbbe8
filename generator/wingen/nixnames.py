"""The nixpkgs names generated Nix may use: the rendered expression is a function of exactly these.

Only long-stable top-level names, so that nixpkgs from any recent year satisfies them and so that a
small stand-in package set (nix/standin, for offline tests) can satisfy the same list."""

from __future__ import annotations

# Every guest: the stages, the controller VM (kernel, initrd, Samba, SSH) and the runtime helper.
NIXPKGS_NAMES: tuple[str, ...] = (
    "runCommand",
    "writeText",
    "writeScript",
    "bash",
    "python3",
    "qemu_kvm",  # QEMU for the host architecture only (hostCpuOnly), as vmTools uses it
    "vde2",
    "samba",
    "openssh",
    "zstd",
    "gzip",
    "cpio",
    "linux",
    "makeModulesClosure",
    "closureInfo",  # the controller's closure, made into its root image
    "squashfsTools",
    "pkgsStatic",  # busybox and dropbear, static or self-contained: they run outside the store
)

# Windows guests also build install media: the ISO by hash, answer floppy/ISO, Cygwin ISO, UEFI.
WINDOWS_NAMES: tuple[str, ...] = (
    "requireFile",
    "fetchurl",
    "dosfstools",
    "mtools",
    "xorriso",
    "OVMF",
    "wimlib",  # wimlib-imagex info: the edition check against the ISO's install.wim
)


def names_for(guest: str) -> tuple[str, ...]:
    return NIXPKGS_NAMES + (WINDOWS_NAMES if guest == "windows" else ())
