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


# Names nixpkgs is moving: the current name, then the one before. The expression takes both as
# optional arguments (`? null`) and uses the current one where the nixpkgs it is called with has it,
# so it works under `allowAliases = false` once the old name is an alias, and on releases before
# the new one existed. nixpkgs has both pkgs/by-name/sq/squashfs-tools and .../squashfsTools now.
RENAMED: tuple[tuple[str, str], ...] = (("squashfs-tools", "squashfsTools"),)


def names_for(guest: str) -> tuple[str, ...]:
    return NIXPKGS_NAMES + (WINDOWS_NAMES if guest == "windows" else ())


def optional_names() -> tuple[str, ...]:
    """The renamed names, both spellings, each an optional argument."""
    return tuple(name for pair in RENAMED for name in pair)
