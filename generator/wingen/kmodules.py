"""The kernel modules each Linux VM loads (the controller, and the Linux test guest), as rendered
into their makeModulesClosure calls.

nixpkgs' kernels build every tristate they are not told otherwise as a module (autoModules), so a
VM loads, by name, everything it needs beyond the core: one module missing fails every build. The
lists start from what NixOS itself loads for the same filesystems (tests/test_kmodules.py holds
them to it), and add what those lists predate.
"""

from __future__ import annotations

# What NixOS puts in its initrd for each filesystem we use.
NIXOS: dict[str, tuple[str, ...]] = {
    # nixos/modules/tasks/filesystems/ext.nix: boot.initrd.availableKernelModules
    "ext": ("ext2", "ext4"),
    # nixos/modules/tasks/filesystems/cifs.nix: boot.initrd.availableKernelModules
    "cifs": ("cifs", "nls_utf8", "hmac", "md4", "ecb", "des_generic", "sha256"),
    # nixos/modules/profiles/qemu-guest.nix: boot.initrd.availableKernelModules
    "9p": ("9p", "9pnet_virtio"),
    # nixos/modules/tasks/filesystems/squashfs.nix: boot.initrd.availableKernelModules
    "squashfs": ("squashfs",),
    # nixos/modules/virtualisation/qemu-vm.nix: boot.initrd.availableKernelModules, for
    # virtualisation.writableStore (an overlay over the host's read-only store)
    "overlay": ("overlay",),
}

# NixOS's cifs list predates SMB3: signing and key derivation (cmac(aes), hmac(sha256)), the
# encrypting AEADs (ccm(aes), gcm(aes), with ctr) and SMB 3.1.1's preauth hash (sha512). cifs asks
# the crypto API for them by name when it mounts, and the kernel loads them through
# request_module, so no symbol dependency of cifs pulls them in.
SMB3_CRYPTO = ("cmac", "aes", "ccm", "gcm", "ctr", "sha512", "md5")

VIRTIO_DISK = ("virtio_pci", "virtio_blk")
VIRTIO_NET = ("virtio_pci", "virtio_net")

# The Linux guest's initrd: its root disk. crc32c as the alias ext4 asks for (newer kernels
# dropped crc32c_generic, nixpkgs PR #489507; makeModulesClosure resolves an alias).
GUEST_BOOT = (*VIRTIO_DISK, "crc32c", *NIXOS["ext"])
# The Linux guest's own disk: the network, the SMB mounts of the shares and the store's overlay.
GUEST = (*VIRTIO_NET, *NIXOS["cifs"], *SMB3_CRYPTO, *NIXOS["overlay"])
# The controller's initrd: the LAN, its root image (squashfs on a virtio disk), the host's store
# and xchg over 9p.
CONTROLLER = (*VIRTIO_NET, "virtio_blk", *NIXOS["squashfs"], *NIXOS["9p"])

# By VM, as the templates see them (`kmodules`).
FOR_VM = {"guest_boot": GUEST_BOOT, "guest": GUEST, "controller": CONTROLLER}
