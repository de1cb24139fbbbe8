"""Read a Windows install ISO without mounting it (standard library only; run in Nix builds).

    python3 -m wingen.runtime.winiso noprompt SRC.iso DST.iso
        DST: SRC with its UEFI El Torito entry pointed at efi/microsoft/boot/efisys_noprompt.bin.
    python3 -m wingen.runtime.winiso extract SRC.iso PATH DST
        Copy the file PATH (case-insensitive, e.g. sources/install.wim) out of SRC.
    python3 -m wingen.runtime.winiso find-wim SRC.iso
        Print the path of the install image: sources/install.wim, else sources/install.esd.
    python3 -m wingen.runtime.winiso check-edition INFO (--name NAME | --index N)
        INFO: `wimlib-imagex info` output. Fail, listing the images there, if NAME/N is not one.

Exit 0 on success; 3 with one line on stderr when the ISO lacks what is needed.

Microsoft's ISOs hold their files in UDF; the ISO 9660 tree beside it holds only a README.TXT
(libarchive/libarchive#1036, clalancette/pycdlib#22), which is why xorriso, which reads ISO 9660
and Joliet only, cannot see boot/ or sources/ there. This module reads UDF (ECMA-167 / OSTA UDF,
the parts oscdimg writes: one type 1 partition map) and falls back to Joliet, then ISO 9660.

The no-prompt copy: Microsoft's UEFI boot image efisys.bin waits for "Press any key to boot from
CD or DVD"; efisys_noprompt.bin, on the same ISO, does not (dockur/windows rebuilds the ISO with
it, src/install.sh). Instead of rebuilding, the copy changes one El Torito catalog entry: its load
address and length now name efisys_noprompt.bin's data, already on the disc. Every other byte,
and so every file and the BIOS entry (boot/etfsboot.com), stays as it was.
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

SECTOR = 2048
NOPROMPT = "efi/microsoft/boot/efisys_noprompt.bin"
INSTALL_IMAGES = ("sources/install.wim", "sources/install.esd")


class MediaError(Exception):
    """The ISO lacks what the build needs (exit 3, one line)."""


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    extents: tuple[tuple[int, int], ...]  # (byte offset in the image, length)
    data: bytes | None = None  # UDF: file data embedded in its entry

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else sum(n for _, n in self.extents)


class Image:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self._udf: _Udf | None = _Udf.probe(self)

    def read(self, offset: int, length: int) -> bytes:
        self.f.seek(offset)
        data = self.f.read(length)
        if len(data) != length:
            raise MediaError(f"the image ends at {offset + len(data)}, inside a structure")
        return data

    def sector(self, lba: int, count: int = 1) -> bytes:
        return self.read(lba * SECTOR, count * SECTOR)

    def volume_descriptors(self) -> list[bytes]:
        out = []
        for lba in range(16, 16 + 64):
            vd = self.sector(lba)
            if vd[1:6] != b"CD001":
                break
            out.append(vd)
            if vd[0] == 255:
                break
        return out

    def lookup(self, path: str) -> Entry | None:
        """The file or directory at path (components compared case-insensitively)."""
        if self._udf is not None:
            entry = self._udf.root()
            list_dir = self._udf.list_dir
        else:
            entry = _iso_root(self)
            list_dir = self.iso_list_dir
        for part in [p for p in path.split("/") if p]:
            if not entry.is_dir:
                return None
            children = {c.name.casefold(): c for c in list_dir(entry)}
            found = children.get(part.casefold())
            if found is None:
                return None
            entry = found
        return entry

    def contents(self, entry: Entry) -> bytes:
        if entry.data is not None:
            return entry.data
        return b"".join(self.read(o, n) for o, n in entry.extents)

    def copy_out(self, entry: Entry, out: BinaryIO) -> None:
        if entry.data is not None:
            out.write(entry.data)
            return
        for offset, length in entry.extents:
            self.f.seek(offset)
            left = length
            while left:
                chunk = self.f.read(min(left, 1 << 20))
                if not chunk:
                    raise MediaError("the image ends inside a file")
                out.write(chunk)
                left -= len(chunk)

    # --- ISO 9660 and Joliet ---------------------------------------------------------------

    def iso_list_dir(self, d: Entry) -> list[Entry]:
        joliet = self._joliet
        data = self.contents(d)
        out: list[Entry] = []
        pending: list[tuple[int, int]] = []  # a multi-extent file's extents so far
        pos = 0
        while pos < len(data):
            length = data[pos]
            if length == 0:  # records never cross a sector: skip to the next one
                pos = (pos // SECTOR + 1) * SECTOR
                continue
            rec = data[pos : pos + length]
            pos += length
            lba, size = struct.unpack_from("<I", rec, 2)[0], struct.unpack_from("<I", rec, 10)[0]
            flags, name_len = rec[25], rec[32]
            raw = rec[33 : 33 + name_len]
            if raw in (b"\0", b"\1"):
                continue
            pending.append((lba * SECTOR, size))
            if flags & 0x80:  # more extents of this file follow
                continue
            name = raw.decode("utf-16-be") if joliet else raw.decode("latin-1")
            name = re.sub(r";\d+$", "", name)
            if not joliet and not flags & 2:
                name = name.rstrip(".")
            out.append(Entry(name, bool(flags & 2), tuple(pending)))
            pending = []
        return out

    @property
    def _joliet(self) -> bool:
        return _joliet_vd(self) is not None


def _joliet_vd(image: Image) -> bytes | None:
    for vd in image.volume_descriptors():
        if vd[0] == 2 and vd[88:91] in (b"%/@", b"%/C", b"%/E"):
            return vd
    return None


def _iso_root(image: Image) -> Entry:
    vd = _joliet_vd(image)
    if vd is None:
        vd = next((v for v in image.volume_descriptors() if v[0] == 1), None)
    if vd is None:
        raise MediaError("not an ISO 9660 image (no primary volume descriptor at sector 16)")
    rec = vd[156 : 156 + 34]
    lba, size = struct.unpack_from("<I", rec, 2)[0], struct.unpack_from("<I", rec, 10)[0]
    return Entry("", True, ((lba * SECTOR, size),))


# --- UDF (ECMA-167 part 3/4, OSTA UDF 1.02) ------------------------------------------------


class _Udf:
    def __init__(self, image: Image, partition_start: int, block: int, fsd: tuple[int, int]):
        self.image = image
        self.start = partition_start
        self.block = block
        self.fsd = fsd  # (logical block, length)

    @staticmethod
    def probe(image: Image) -> _Udf | None:
        # The volume recognition sequence names an NSR descriptor when UDF is present.
        nsr = False
        for lba in range(16, 16 + 64):
            ident = image.sector(lba)[1:6]
            if ident in (b"NSR02", b"NSR03"):
                nsr = True
            if ident not in (b"CD001", b"BEA01", b"NSR02", b"NSR03", b"TEA01", b"BOOT2"):
                break
        if not nsr:
            return None
        avdp = image.sector(256)
        if _tag(avdp) != 2:
            raise MediaError("UDF is announced but there is no anchor at sector 256")
        length, location = struct.unpack_from("<II", avdp, 16)
        start = block = None
        fsd = None
        for lba in range(location, location + max(1, length // SECTOR)):
            d = image.sector(lba)
            tag = _tag(d)
            if tag == 5:  # partition descriptor
                start = struct.unpack_from("<I", d, 188)[0]
            elif tag == 6:  # logical volume descriptor
                block = struct.unpack_from("<I", d, 212)[0]
                fsd_len, fsd_lbn = struct.unpack_from("<II", d, 248)
                fsd = (fsd_lbn, fsd_len)
                if d[440] != 1:
                    raise MediaError(f"UDF partition map type {d[440]} is not supported")
            elif tag == 8:  # terminating descriptor
                break
        if start is None or block is None or fsd is None:
            raise MediaError("the UDF volume descriptors lack a partition or logical volume")
        if block != SECTOR:
            raise MediaError(f"UDF logical block size {block} is not {SECTOR}")
        return _Udf(image, start, block, fsd)

    def _lb(self, lbn: int, length: int) -> bytes:
        return self.image.read((self.start + lbn) * self.block, length)

    def root(self) -> Entry:
        fsd = self._lb(self.fsd[0], self.block)
        if _tag(fsd) != 256:
            raise MediaError("no UDF file set descriptor where the logical volume says")
        _, lbn = struct.unpack_from("<II", fsd, 400)
        return self._entry("", lbn)

    def _entry(self, name: str, lbn: int) -> Entry:
        fe = self._lb(lbn, self.block)
        tag = _tag(fe)
        if tag == 261:  # file entry
            l_ea, l_ad = struct.unpack_from("<II", fe, 168)
            base = 176
        elif tag == 266:  # extended file entry
            l_ea, l_ad = struct.unpack_from("<II", fe, 208)
            base = 216
        else:
            raise MediaError(f"UDF: {name!r} has no file entry (tag {tag})")
        file_type = fe[16 + 11]
        ad_type = struct.unpack_from("<H", fe, 16 + 18)[0] & 7
        info_len = struct.unpack_from("<Q", fe, 56)[0]
        ads = fe[base + l_ea : base + l_ea + l_ad]
        is_dir = file_type == 4
        if ad_type == 3:  # data embedded in the entry
            return Entry(name, is_dir, (), ads[:info_len])
        step = {0: 8, 1: 16}.get(ad_type)
        if step is None:
            raise MediaError(f"UDF: {name!r} uses allocation descriptors of type {ad_type}")
        extents = []
        left = info_len
        for i in range(0, len(ads) - step + 1, step):
            raw_len, pos = struct.unpack_from("<II", ads, i)
            kind, length = raw_len >> 30, raw_len & 0x3FFFFFFF
            if length == 0:
                break
            if kind == 3:
                raise MediaError(f"UDF: {name!r} continues its extents elsewhere (unsupported)")
            take = min(length, left)
            extents.append(((self.start + pos) * self.block, take))
            left -= take
        return Entry(name, is_dir, tuple(extents))

    def list_dir(self, d: Entry) -> list[Entry]:
        data = self.image.contents(d)
        out = []
        pos = 0
        while pos + 38 <= len(data):
            if struct.unpack_from("<H", data, pos)[0] != 257:
                raise MediaError("UDF: a directory holds something that is not a file identifier")
            chars, l_fi = data[pos + 18], data[pos + 19]
            lbn = struct.unpack_from("<I", data, pos + 24)[0]
            l_iu = struct.unpack_from("<H", data, pos + 36)[0]
            ident = data[pos + 38 + l_iu : pos + 38 + l_iu + l_fi]
            pos += (38 + l_iu + l_fi + 3) & ~3
            if chars & 0x0C:  # the parent, or a deleted entry
                continue
            out.append(self._entry(_dstring(ident), lbn))
        return out


def _tag(d: bytes) -> int:
    return int(struct.unpack_from("<H", d, 0)[0])


def _dstring(raw: bytes) -> str:
    if not raw:
        return ""
    if raw[0] == 8:
        return raw[1:].decode("latin-1")
    if raw[0] == 16:
        return raw[1:].decode("utf-16-be")
    raise MediaError(f"UDF: unknown name compression {raw[0]}")


# --- El Torito ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BootEntry:
    offset: int  # byte offset of the 32-byte entry in the image
    platform: int  # 0 x86 BIOS, 0xEF UEFI
    sectors: int  # 512-byte sectors loaded
    lba: int


def boot_entries(image: Image) -> list[BootEntry]:
    """The El Torito catalog's boot entries (the default one first)."""
    record = next((vd for vd in image.volume_descriptors()
                   if vd[0] == 0 and vd[7:30] == b"EL TORITO SPECIFICATION"), None)  # fmt: skip
    if record is None:
        raise MediaError("the ISO is not bootable (no El Torito boot record)")
    cat_lba = struct.unpack_from("<I", record, 0x47)[0]
    base = cat_lba * SECTOR
    cat = image.read(base, SECTOR)
    if cat[0] != 1 or cat[30:32] != b"\x55\xaa":
        raise MediaError("the El Torito boot catalog has no validation entry")
    entries = [_boot_entry(cat, 32, cat[1], base)]
    pos = 64
    while pos + 32 <= SECTOR and cat[pos] in (0x90, 0x91):
        last, platform = cat[pos] == 0x91, cat[pos + 1]
        count = struct.unpack_from("<H", cat, pos + 2)[0]
        pos += 32
        for _ in range(count):
            entries.append(_boot_entry(cat, pos, platform, base))
            pos += 32
        if last:
            break
    return entries


def _boot_entry(cat: bytes, pos: int, platform: int, base: int) -> BootEntry:
    sectors, lba = struct.unpack_from("<HI", cat, pos + 6)
    return BootEntry(base + pos, platform, sectors, lba)


def _file_lba(entry: Entry, what: str) -> int:
    if entry.data is not None or len(entry.extents) != 1 or entry.extents[0][0] % SECTOR:
        raise MediaError(f"{what} is not stored in one run of sectors, so it cannot boot")
    return entry.extents[0][0] // SECTOR


def noprompt(src: Path, dst: Path) -> None:
    with src.open("rb") as f:
        image = Image(f)
        target = image.lookup(NOPROMPT)
        if target is None or target.is_dir:
            raise MediaError(
                f"{src.name} has no {NOPROMPT}: UEFI setup from it would wait for a key press; "
                'use a Microsoft ISO of Windows 8 / Server 2012 or later, or firmware = "bios"'
            )
        efi = [e for e in boot_entries(image) if e.platform == 0xEF]
        if not efi:
            raise MediaError(f"{src.name} has no UEFI El Torito boot entry")
        lba = _file_lba(target, NOPROMPT)
        sectors = (target.size + 511) // 512
        if sectors > 0xFFFF:  # does not fit: keep the count, as firmware reads the FAT's size
            sectors = efi[0].sectors
    # Straight into dst ($out: Nix removes it if the build fails; no temporary in the store).
    shutil.copyfile(src, dst)
    with dst.open("r+b") as out:
        out.seek(efi[0].offset + 6)
        out.write(struct.pack("<HI", sectors, lba))


def extract(src: Path, path: str, dst: Path) -> None:
    with src.open("rb") as f:
        image = Image(f)
        entry = image.lookup(path)
        if entry is None or entry.is_dir:
            raise MediaError(f"{src.name} has no file {path}")
        with dst.open("wb") as out:
            image.copy_out(entry, out)


def find_wim(src: Path) -> str:
    with src.open("rb") as f:
        image = Image(f)
        for path in INSTALL_IMAGES:
            entry = image.lookup(path)
            if entry is not None and not entry.is_dir:
                return path
    raise MediaError(f"{src.name} has no {' or '.join(INSTALL_IMAGES)}: not a Windows install ISO")


@dataclass(frozen=True)
class WimImage:
    """One image as `wimlib-imagex info` prints it (its fields come from the WIM's XML data:
    WINDOWS/ARCH, WINDOWS/EDITIONID, WINDOWS/LANGUAGES); None where the WIM has no such field."""

    index: int
    name: str
    arch: str | None = None  # "x86", "x86_64", "ARM64" …
    edition_id: str | None = None  # "Professional", "ServerStandardEval" …
    languages: tuple[str, ...] | None = None
    default_language: str | None = None

    def describe(self) -> str:
        parts = [f"{self.index}: {self.name!r}"]
        if self.arch is not None:
            parts.append(self.arch)
        if self.edition_id is not None:
            parts.append(f"Edition ID {self.edition_id}")
        if self.languages is not None:
            parts.append(f"languages {' '.join(self.languages)} (default {self.default_language})")
        return ", ".join(parts)


_FIELDS = {
    "Name": "name",
    "Architecture": "arch",
    "Edition ID": "edition_id",
    "Languages": "languages",
    "Default Language": "default_language",
}


def wim_images(info: str) -> list[WimImage]:
    """Each image in `wimlib-imagex info` output."""
    images: list[WimImage] = []
    fields: dict[str, Any] | None = None
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Index" and value.isdigit():
            if fields is not None and "name" in fields:
                images.append(WimImage(**fields))
            fields = {"index": int(value)}
        elif fields is not None and key in _FIELDS:
            fields[_FIELDS[key]] = tuple(value.split()) if key == "Languages" else value
    if fields is not None and "name" in fields:
        images.append(WimImage(**fields))
    return images


def _chosen(images: list[WimImage], name: str | None, index: int | None) -> WimImage:
    listing = "; ".join(f"{i.index}: {i.name!r}" for i in images) or "none"
    if name is not None:
        for image in images:
            if image.name == name:
                return image
        close = [i.name for i in images if i.name.casefold() == name.casefold()]
        hint = f" (spelled {close[0]!r} there)" if close else ""
        raise MediaError(
            f"windows.edition {name!r} is not an image of this ISO{hint}; it has {listing} "
            "(set windows.edition to one of these names, or windows.image_index)"
        )
    for image in images:
        if image.index == index:
            return image
    raise MediaError(
        f"windows.image_index {index} is not an image of this ISO; it has {listing} "
        "(set windows.image_index to one of these, or windows.edition)"
    )


def check_edition(
    info: str,
    name: str | None,
    index: int | None,
    *,
    language: str | None = None,
    arch: str | None = None,
    generic_key: bool = False,
) -> str:
    """The configured image is on the ISO, and Setup can use it unattended: the display language
    is one of the image's (else Setup stops at its language page: cschneegans/unattend-generator
    issues 64 and 170), its architecture is the answer file's (else Setup ignores the components
    written for the other one), and a generic (KMS client) key is not sent to evaluation media,
    whose Edition ID ends in "Eval" and which refuse it (dockur/windows assets/win2022-eval.xml
    sends an empty key; OpenNebula/one-apps issue 225). A field the WIM does not carry is not
    checked."""
    image = _chosen(wim_images(info), name, index)
    has = f"image {image.describe()}"
    if arch is not None and image.arch is not None and image.arch != arch:
        raise MediaError(
            f"windows.architecture is {_ARCH_CONFIG.get(arch, arch)!r} but {has} "
            f"(set windows.architecture = {_ARCH_CONFIG.get(image.arch, image.arch)!r}, or use "
            "an ISO of that architecture)"
        )
    languages = [lang.casefold() for lang in image.languages or ()]
    if language is not None and image.languages and language.casefold() not in languages:
        raise MediaError(
            f"windows.language {language!r} is not a language of {has} "
            f"(set windows.language = {image.default_language or image.languages[0]!r})"
        )
    if generic_key and image.edition_id is not None and image.edition_id.endswith("Eval"):
        raise MediaError(
            f'windows.product_key "generic" is a KMS client key, which evaluation media refuse; '
            f'{has} (set windows.product_key = "none")'
        )
    return f"{has} fits the config"


# wimlib's names for WINDOWS/ARCH (0: x86, 9: x86_64) and the config's.
_ARCH_CONFIG = {"x86": "i686", "x86_64": "x86_64"}
_ARCH_WIMLIB = {v: k for k, v in _ARCH_CONFIG.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m wingen.runtime.winiso")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("noprompt")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p = sub.add_parser("extract")
    p.add_argument("src", type=Path)
    p.add_argument("path")
    p.add_argument("dst", type=Path)
    p = sub.add_parser("find-wim")
    p.add_argument("src", type=Path)
    p = sub.add_parser("check-edition")
    p.add_argument("info", type=Path)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--name")
    which.add_argument("--index", type=int)
    p.add_argument("--language")
    p.add_argument("--architecture", choices=sorted(_ARCH_WIMLIB))
    p.add_argument("--generic-key", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "noprompt":
            noprompt(args.src, args.dst)
        elif args.cmd == "extract":
            extract(args.src, args.path, args.dst)
        elif args.cmd == "find-wim":
            print(find_wim(args.src))
        else:
            info = args.info.read_text(encoding="utf-8", errors="replace")
            arch = _ARCH_WIMLIB.get(args.architecture) if args.architecture else None
            print(
                check_edition(
                    info, args.name, args.index,
                    language=args.language, arch=arch, generic_key=args.generic_key,
                )
            )  # fmt: skip
    except MediaError as exc:
        print(f"wingen: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
