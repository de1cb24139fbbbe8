"""The stand-in package set is at least as strict as nixpkgs where the rendered Nix depends on it.

Each test builds the stand-in's own derivations with real Nix (no VM) and checks that it fails
where nixpkgs fails: bash without programmable completion, kernel modules in their own output,
makeModulesClosure on a name the kernel lacks, dropbear's sbin as a symlink, the controller's
tools needing nothing outside their closure."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from .conftest import E2E, STANDIN, NixRun

pytestmark = pytest.mark.nix


def build(e2e: E2E, kernel_root: Path, name: str, expr: str, split: bool = True) -> NixRun:
    """nix-build `expr` (linked as standin-NAME), with `p` bound to the stand-in set."""
    attr = f"standin-{name}"
    top = e2e.dir / f"{attr}.nix"
    top.write_text(
        f'let p = import {STANDIN} {{ kernelRoot = "{kernel_root}"; '
        f"splitKernelModules = {str(split).lower()}; }}; in {{ {attr} = {expr}; }}\n"
    )
    return e2e.build(attr, top=top.name, timeout=300)


def closure(modules: str, kernel: str = "p.linux.modules or p.linux") -> str:
    args = f"kernel = {kernel}; firmware = p.linux; rootModules = {modules};"
    return f"p.makeModulesClosure {{ {args} }}"


@pytest.mark.parametrize("builtin", ["compgen", "complete", "compopt"])
def test_bash_has_no_programmable_completion(e2e: E2E, kernel_root: Path, builtin: str) -> None:
    run = build(e2e, kernel_root, "bash", "p.bash")
    assert run.returncode == 0, run.output
    bash = e2e.dir / "standin-bash" / "bin" / "bash"
    proc = subprocess.run(
        [str(bash), "-e", "-c", f"{builtin} -e; echo reached"],
        capture_output=True,
        text=True,
        check=False,
    )
    # As in nixpkgs' bash (built --disable-readline): the builtin does not exist.
    assert proc.returncode == 127, proc
    assert f"{builtin}: command not found" in proc.stderr
    assert "reached" not in proc.stdout


def test_dropbear_sbin_is_a_symlink_to_bin(e2e: E2E, kernel_root: Path) -> None:
    run = build(e2e, kernel_root, "dropbear", "p.pkgsStatic.dropbear")
    assert run.returncode == 0, run.output
    tree = e2e.dir / "standin-dropbear"
    assert (tree / "bin" / "dropbear").is_file()
    assert (tree / "sbin").is_symlink() and (tree / "sbin").readlink() == Path("bin")


def test_kernel_modules_sit_in_their_own_output(e2e: E2E, kernel_root: Path) -> None:
    run = build(e2e, kernel_root, "linux", "p.linux.modules")
    assert run.returncode == 0, run.output
    # nix-build names the link of a non-default output after it.
    assert list((e2e.dir / "standin-linux-modules" / "lib" / "modules").glob("*/modules.dep"))
    out = build(e2e, kernel_root, "linux-out", "p.linux")
    assert out.returncode == 0, out.output
    assert (e2e.dir / "standin-linux-out" / "bzImage").is_file()
    assert not (e2e.dir / "standin-linux-out" / "lib").exists()


def test_kernel_dev_holds_the_uncompressed_pvh_vmlinux(e2e: E2E, kernel_root: Path) -> None:
    # As nixpkgs' kernels: the ELF the bzImage decompresses to, in `dev`, bootable through PVH.
    run = build(e2e, kernel_root, "linux-dev", "p.linux.dev")
    assert run.returncode == 0, run.output
    vmlinux = e2e.dir / "standin-linux-dev-dev" / "vmlinux"
    notes = subprocess.run(
        ["readelf", "-n", "-W", str(vmlinux)], capture_output=True, text=True, check=True
    ).stdout
    # A Xen note of type XEN_ELFNOTE_PHYS32_ENTRY (18): the PVH entry QEMU's -kernel needs.
    assert any(
        line.split()[:1] == ["Xen"] and "(0x00000012)" in line for line in notes.splitlines()
    ), notes


def test_closure_of_the_split_kernels_out_fails_as_in_nixpkgs(e2e: E2E, kernel_root: Path) -> None:
    run = build(e2e, kernel_root, "closure-out", closure('[ "virtio_pci" ]', kernel="p.linux"))
    assert run.returncode != 0
    assert "no modules were provided" in run.output


def test_kernel_modules_in_out_as_on_24_05(e2e: E2E, kernel_root: Path) -> None:
    run = build(e2e, kernel_root, "linux-2405", "p.linux", split=False)
    assert run.returncode == 0, run.output
    assert list((e2e.dir / "standin-linux-2405" / "lib" / "modules").glob("*/modules.dep"))
    assert (e2e.dir / "standin-linux-2405" / "bzImage").is_file()
    split = build(e2e, kernel_root, "linux-2405-split", "p.linux.modules", split=False)
    assert split.returncode != 0
    assert "attribute 'modules' missing" in split.output


def test_closure_fails_on_a_module_the_kernel_lacks(e2e: E2E, kernel_root: Path) -> None:
    run = build(e2e, kernel_root, "closure-bad", closure('[ "virtio_pci" "crc32c_gone" ]'))
    assert run.returncode != 0
    assert "crc32c_gone" in run.output and "not found" in run.output


def test_closure_resolves_aliases_dependencies_first(e2e: E2E, kernel_root: Path) -> None:
    run = build(e2e, kernel_root, "closure-alias", closure('[ "crc32c" "sha512" "ext4" ]'))
    assert run.returncode == 0, run.output
    listed = (e2e.dir / "standin-closure-alias" / "insmod-list").read_text().split()
    # xz-compressed, as nixpkgs' kernels ship them: the rendered Nix must unpack them for busybox.
    assert listed and all(p.endswith(".ko.xz") for p in listed)
    names = [Path(p).name.removesuffix(".ko.xz") for p in listed]
    # `crc32c` and `sha512` are aliases (modules.alias), not module files.
    assert "crc32c_generic" in names and "sha512_generic" in names
    assert names.index("jbd2") < names.index("ext4")
    assert all(Path(p).is_file() for p in listed)


def test_run_command_has_only_stdenvs_tools(e2e: E2E, kernel_root: Path) -> None:
    """As nixpkgs' runCommand (stdenvNoCC): coreutils, sed, find... but no cpio, zstd, modprobe."""
    script = (
        "mkdir $out; for t in cp find sed grep awk tar gzip xz diff cpio zstd busybox modprobe "
        "ssh-keygen python3; do command -v $t >/dev/null && echo $t >> $out/found; done; true"
    )
    run = build(e2e, kernel_root, "path", f"p.runCommand \"t\" {{ }} ''{script}''")
    assert run.returncode == 0, run.output
    found = (e2e.dir / "standin-path" / "found").read_text().split()
    assert found == ["cp", "find", "sed", "grep", "awk", "tar", "gzip", "xz", "diff"]


def test_controller_tools_run_from_their_closure_alone(
    e2e: E2E, kernel_root: Path, tmp_path: Path
) -> None:
    """The controller runs from an image of its closure (closureInfo), as with nixpkgs: the
    stand-in's smbd and ssh must run in a root holding that closure and nothing else."""
    expr = "p.closureInfo { rootPaths = [ p.samba p.openssh ]; }"
    run = build(e2e, kernel_root, "closure", expr)
    assert run.returncode == 0, run.output
    paths = (e2e.dir / "standin-closure" / "store-paths").read_text().split()
    assert paths == sorted(paths) and all(p.startswith("/nix/store/") for p in paths)
    samba = next(p for p in paths if p.endswith("-standin-samba-selfcontained"))
    openssh = next(p for p in paths if p.endswith("-standin-openssh-selfcontained"))
    root = tmp_path / "root"
    for path in paths:
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", path, f"{root}{path}"], check=True)
    for path in root.rglob("*"):  # nothing in it points outside the store
        if path.is_symlink():
            target = str(path.readlink())
            assert not target.startswith("/") or target.startswith("/nix/store/"), (path, target)
    (root / "dev").mkdir()
    os.mknod(root / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # ssh opens it
    (root / "etc").mkdir()  # and looks its user up, as in the controller (its preinit writes it)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    for argv in ([f"{samba}/bin/smbd", "--version"], [f"{openssh}/bin/ssh", "-V"]):
        proc = subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert proc.stdout + proc.stderr, argv
