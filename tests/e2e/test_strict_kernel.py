"""The stand-in kernel is as strict as nixpkgs' kernels (nix/standin/kernel.nix), where Debian's
prebuilt one is kinder; and the pipeline lives with that: an installer that cannot mount its disk
fails the install stage, with its reason, at once."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import E2E, HERE

pytestmark = pytest.mark.e2e


def modules_dir(root: Path) -> Path:
    return next((root / "lib" / "modules").iterdir())


def builtin(root: Path) -> set[str]:
    """The modules built into the kernel (modules.builtin, one path per line)."""
    text = (modules_dir(root) / "modules.builtin").read_text()
    return {Path(line).name.split(".ko")[0] for line in text.split()}


@pytest.fixture(scope="module")
def debian_root() -> Path:
    out = subprocess.run(
        ["sh", str(HERE / "setup.sh"), "debian"], stdout=subprocess.PIPE, text=True, check=True
    )
    return Path(out.stdout.strip())


def test_ext2_is_a_module_of_its_own(kernel_root: Path) -> None:
    """common-config.nix's EXT2_FS_XATTR = yes builds the ext2 driver, so ext4 does not serve
    "ext2" (EXT4_USE_FOR_EXT2): the guest must load ext2.ko to mount its ext2 root."""
    assert list(modules_dir(kernel_root).rglob("ext2.ko.xz"))
    config = next((kernel_root / "boot").glob("config-*")).read_text()
    assert "CONFIG_EXT2_FS=m" in config
    assert "CONFIG_EXT4_USE_FOR_EXT2=y" not in config


def test_a_crypto_algorithm_cifs_asks_for_is_a_module(kernel_root: Path) -> None:
    assert list(modules_dir(kernel_root).rglob("hmac.ko.xz"))
    assert "hmac" not in builtin(kernel_root)


def test_every_module_is_xz_compressed(kernel_root: Path) -> None:
    files = [p.name for p in modules_dir(kernel_root).rglob("*.ko*")]
    assert files and all(name.endswith(".ko.xz") for name in files), files[:5]


def test_debians_kernel_hides_what_ours_shows(debian_root: Path) -> None:
    """Why the suite does not boot Debian's kernel: no ext2 module (ext4 serves ext2) and
    uncompressed modules (its hmac is built in or plain: neither tests our loading of it)."""
    mods = modules_dir(debian_root)
    assert not list(mods.rglob("ext2.ko*"))
    assert not list(mods.rglob("*.ko.xz"))


def test_an_installer_that_dies_fails_the_install_stage(e2e: E2E) -> None:
    """Without the ext2 module (as our initrd had before: it loaded ext4 only) the installer cannot
    mount its new filesystem: it says so as the contract's failure line and powers off, and the
    stage fails with that reason, long before its deadline, instead of passing an empty disk on."""
    top = e2e.variant("noext2")
    path = e2e.dir / top
    drop = (
        "overlays = [ (final: prev: { makeModulesClosure = a: prev.makeModulesClosure "
        '(a // { rootModules = builtins.filter (m: m != "ext2") a.rootModules; }); }) ];'
    )
    text, n = re.subn(
        r"(pkgs = import \S+ \{ )", r"\g<1>" + drop.replace("\\", "\\\\") + " ", path.read_text()
    )
    assert n == 1
    path.write_text(text)
    run = e2e.build("installed", top=top)
    assert run.returncode != 0
    assert "VM guest failed: wingen-initrd: cannot mount the new filesystem" in run.output, (
        run.output
    )
    assert "deadline:" not in run.output  # ended by the line, not by its 360 s deadline


def test_the_guest_has_a_working_modprobe(e2e: E2E) -> None:
    """The kernel's helper is busybox's modprobe, which loads a module of the closure by name."""
    run = e2e.build("modprobe")
    assert run.returncode == 0, run.output
    out = e2e.dir / "modprobe"
    assert (out / "helper").read_text().strip() == "/bin/modprobe"
    assert (out / "after-remove").read_text().strip() == "0"
    assert (out / "after-load").read_text().strip() == "1"
