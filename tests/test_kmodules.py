"""Each Linux VM's kernel modules contain what NixOS itself loads for the same filesystems
(kmodules.NIXOS, each list cited there), and the render asks makeModulesClosure for exactly them."""

from __future__ import annotations

import re

import pytest

from helpers import ROOT
from wingen import kmodules

# Which filesystems each VM mounts.
USES = {
    "guest_boot": ("ext",),  # its root disk, ext2 (initrd-init.sh)
    "guest": ("cifs", "overlay"),  # the controller's shares; the store's overlay
    "controller": ("9p", "squashfs"),  # the host's store and xchg; its own root image
}


@pytest.mark.parametrize("vm", sorted(USES))
def test_each_vm_loads_what_nixos_loads_for_its_filesystems(vm: str) -> None:
    ours = set(kmodules.FOR_VM[vm])
    for fs in USES[vm]:
        missing = [m for m in kmodules.NIXOS[fs] if m not in ours]
        assert not missing, f"{vm} lacks NixOS's {fs} modules {missing}"


def test_smb3_mounts_get_their_crypto_beyond_nixos_list() -> None:
    """NixOS's cifs list predates SMB3 signing and encryption; the guest loads those too."""
    for name in ("cmac", "aes", "ccm", "gcm", "sha512"):
        assert name in kmodules.GUEST


def test_the_render_asks_for_each_list() -> None:
    from wingen.loader import load_config
    from wingen.render import render

    expr = render(load_config(ROOT / "examples" / "linux.toml"), ROOT / "examples").expression
    asked = [
        tuple(re.findall(r'\("([^"]+)"\)', m))
        for m in re.findall(r"rootModules = (\[[^\]]*\]);", expr)
    ]
    assert sorted(asked) == sorted(kmodules.FOR_VM.values())
