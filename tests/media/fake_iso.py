"""FAKE Windows install ISOs, built from real tools: nothing here is Microsoft's, but each part has
the shape Microsoft's media have, made by the programs that make such parts.

- sources/install.wim: `wimlib-imagex capture` + `append`, one named image per entry of `images`,
  each with the properties Microsoft's images carry and `wimlib-imagex info` prints (architecture,
  Edition ID, languages and the default one; set with --image-property, as wimlib documents);
- efi/microsoft/boot/efisys.bin and efisys_noprompt.bin: two distinct 1.44 MB FAT images
  (mkfs.fat, different labels and serials), as on Windows 8 and later media;
- boot/etfsboot.com: 4 KiB standing in for the BIOS boot sector loader.

Two masterings: `xorriso_iso` (ISO 9660 + Joliet + Rock Ridge, BIOS + EFI El Torito, what
lab.md showed xorriso makes), and `microsoft_shaped_iso` (pycdlib): the files only in UDF, the
ISO 9660 tree holding just README.TXT, El Torito entries pointing at the UDF files' data. That is
how oscdimg -u2 lays out Microsoft's ISOs (libarchive/libarchive#1036, clalancette/pycdlib#22),
and xorriso sees only README.TXT there."""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

Images = tuple["str | FakeImage", ...]
BOOT_FILES = {
    "boot/etfsboot.com": "ETFSBOOT.COM",
    "efi/microsoft/boot/efisys.bin": "EFISYS.BIN",
}
README = (
    b'This disc contains a "UDF" file system and requires an operating system\r\n'
    b'that supports the ISO-13346 "UDF" file system specification.\r\n'
)


@dataclass(frozen=True)
class FakeImage:
    name: str
    arch: str = "9"  # WINDOWS/ARCH: 0 x86, 9 x86_64
    edition_id: str | None = None  # from the name when not given
    languages: tuple[str, ...] = ("en-US",)

    @property
    def properties(self) -> list[str]:
        edition = self.edition_id or _edition_id(self.name)
        props = [f"WINDOWS/ARCH={self.arch}", f"WINDOWS/EDITIONID={edition}"]
        props += [f"WINDOWS/LANGUAGES/LANGUAGE[{n + 1}]={lang}"
                  for n, lang in enumerate(self.languages)]  # fmt: skip
        props.append(f"WINDOWS/LANGUAGES/DEFAULT={self.languages[0]}")
        return [arg for prop in props for arg in ("--image-property", prop)]


def _edition_id(name: str) -> str:
    """The Edition ID Microsoft's images of that name carry (retail media)."""
    for words, edition in (("Home", "Core"), ("Pro", "Professional"),
                           ("SERVERSTANDARD", "ServerStandard"),
                           ("SERVERDATACENTER", "ServerDatacenter")):  # fmt: skip
        if words in name:
            return edition
    return "Enterprise"


def _run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{argv}: {proc.stderr[-2000:]}"


def windows_tree(root: Path, images: Images, *, noprompt: bool = True) -> Path:
    tree = root / "tree"
    boot = tree / "efi" / "microsoft" / "boot"
    boot.mkdir(parents=True)
    (tree / "boot").mkdir()
    (tree / "sources").mkdir()
    (tree / "boot" / "etfsboot.com").write_bytes(bytes(range(256)) * 16)
    _run("mkfs.fat", "-C", "-n", "EFISYS", "-i", "11111111", str(boot / "efisys.bin"), "1440")
    if noprompt:
        _run("mkfs.fat", "-C", "-n", "NOPROMPT", "-i", "22222222",
             str(boot / "efisys_noprompt.bin"), "1440")  # fmt: skip
        assert (boot / "efisys.bin").read_bytes() != (boot / "efisys_noprompt.bin").read_bytes()
    wim = tree / "sources" / "install.wim"
    for n, entry in enumerate(images):
        image = entry if isinstance(entry, FakeImage) else FakeImage(entry)
        content = root / f"image{n}"
        (content / "Windows" / "System32").mkdir(parents=True)
        (content / "Windows" / "System32" / "edition.txt").write_text(image.name)
        _run("wimlib-imagex", "append" if n else "capture", str(content), str(wim), image.name,
             *image.properties)  # fmt: skip
    (tree / "setup.exe").write_bytes(b"MZ pretend setup\n")
    return tree


def xorriso_iso(root: Path, name: str, images: Images, *, noprompt: bool = True) -> Path:
    tree = windows_tree(root, images, noprompt=noprompt)
    iso = root / name
    _run("xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-V", "FAKE_WIN", "-J",
         "-joliet-long", "-r", "-b", "boot/etfsboot.com", "-no-emul-boot", "-boot-load-size", "8",
         "-eltorito-alt-boot", "-e", "efi/microsoft/boot/efisys.bin", "-no-emul-boot",
         str(tree))  # fmt: skip
    return iso


def microsoft_shaped_iso(root: Path, name: str, images: Images, *, noprompt: bool = True) -> Path:
    import pycdlib  # type: ignore[import-untyped]

    tree = windows_tree(root, images, noprompt=noprompt)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident="FAKE_WIN", udf="2.60")
    iso.add_fp(io.BytesIO(README), len(README), iso_path="/README.TXT;1")
    for d in sorted({p.relative_to(tree) for p in tree.rglob("*") if p.is_dir()}, key=str):
        iso.add_directory(udf_path=f"/{d}")
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        rel = str(path.relative_to(tree))
        data = path.read_bytes()
        boot = BOOT_FILES.get(rel)
        iso.add_fp(io.BytesIO(data), len(data), udf_path=f"/{rel}",
                   iso_path=f"/{boot};1" if boot else None)  # fmt: skip
    iso.add_eltorito("/ETFSBOOT.COM;1", bootcatfile="/BOOT.CAT;1", boot_load_size=8)
    iso.add_eltorito("/EFISYS.BIN;1", bootcatfile="/BOOT.CAT;1", efi=True)
    for boot_name in (*BOOT_FILES.values(), "BOOT.CAT"):  # only README.TXT stays in ISO 9660
        iso.rm_hard_link(iso_path=f"/{boot_name};1")
    out = root / name
    iso.write(str(out))
    iso.close()
    return out
