"""The no-prompt copy and the edition check, on FAKE Windows ISOs built from real tools
(fake_iso.py): both as xorriso masters them and in Microsoft's shape (files in UDF only).
The derivations are built for real by nix-build against the stand-in set; what they produce is
read back with xorriso (El Torito boot images, files) and cmp."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from wingen.runtime import winiso

from .fake_iso import FakeImage, microsoft_shaped_iso, windows_tree, xorriso_iso
from .test_nix_media import build, run, setup_project, try_build

pytestmark = pytest.mark.nix
Maker = Callable[..., Path]
MAKERS = {"xorriso": xorriso_iso, "microsoft-shaped": microsoft_shaped_iso}
IMAGES = ("Windows 11 Home", "Windows 10 Pro")  # some Windows 11 ISOs name Pro "Windows 10 Pro"
NOPROMPT = "efi/microsoft/boot/efisys_noprompt.bin"


def in_store(iso: Path) -> str:
    """Add the ISO to the store as the user would; the config line that pins it."""
    run("nix-store", "--add-fixed", "sha256", str(iso))
    sha = hashlib.sha256(iso.read_bytes()).hexdigest()
    return f'iso = {{ name = "{iso.name}", sha256 = "{sha}" }}'


def unique(tmp: Path, what: str) -> str:
    return f"fake-win-{what}-{hashlib.sha256(str(tmp).encode()).hexdigest()[:8]}.iso"


def project(tmp: Path, iso: Path, edition: str) -> Path:
    work, _ = setup_project(tmp, f'{in_store(iso)}\n{edition}\nfirmware = "uefi"')
    return work


def boot_images(iso: Path, dest: Path) -> dict[str, bytes]:
    """The El Torito boot images as xorriso extracts them, by platform."""
    dest.mkdir()
    run("xorriso", "-osirrox", "on", "-indev", str(iso), "-extract_boot_images", str(dest))
    return {
        platform: (dest / f"eltorito_img{n}_{platform}.img").read_bytes()
        for n, platform in ((1, "bios"), (2, "uefi"))
    }


@pytest.mark.parametrize("shape", sorted(MAKERS))
def test_noprompt_copy_boots_the_noprompt_image_and_changes_nothing_else(
    tmp_path: Path, shape: str
) -> None:
    iso = MAKERS[shape](tmp_path, unique(tmp_path, shape), IMAGES)
    tree = tmp_path / "tree"
    work = project(tmp_path, iso, 'edition = "Windows 10 Pro"')
    copy = build(work, "windowsIsoNoPrompt")
    assert build(work, "windowsBootIso") == copy  # UEFI installs boot the copy

    before, after = boot_images(iso, tmp_path / "b"), boot_images(copy, tmp_path / "a")
    assert before["uefi"] == (tree / "efi/microsoft/boot/efisys.bin").read_bytes()
    assert after["uefi"] == (tree / NOPROMPT).read_bytes()
    # BIOS loads the entry's 8 sectors of 512 bytes (xorriso may extract more: it guesses an
    # image's end from where the next one starts, and the UEFI one has moved)
    etfsboot = (tree / "boot/etfsboot.com").read_bytes()
    assert after["bios"][:4096] == before["bios"][:4096] == etfsboot

    # Every other byte is the original's: the only change is the UEFI catalog entry's sector
    # count and load address (6 bytes), so every file, in every tree, is unchanged.
    diff = subprocess.run(["cmp", "-l", str(iso), str(copy)], capture_output=True, text=True)
    offsets = [int(line.split()[0]) - 1 for line in diff.stdout.splitlines()]
    with iso.open("rb") as f:
        entry = next(e for e in winiso.boot_entries(winiso.Image(f)) if e.platform == 0xEF)
    assert offsets and all(entry.offset + 6 <= o < entry.offset + 12 for o in offsets)
    assert iso.stat().st_size == copy.stat().st_size


def test_xorriso_sees_only_readme_on_a_microsoft_shaped_iso(tmp_path: Path) -> None:
    """Why the copy is not made by xorriso: on Microsoft's layout it finds no files to copy."""
    iso = microsoft_shaped_iso(tmp_path, "ms.iso", IMAGES)
    listing = run("xorriso", "-indev", str(iso), "-find", "/", "-type", "f", "--")
    assert listing.split() == ["'/README.TXT'"]
    with iso.open("rb") as f:
        image = winiso.Image(f)
        entry = image.lookup("sources/install.wim")
        assert entry is not None
        assert image.contents(entry) == (tmp_path / "tree/sources/install.wim").read_bytes()


@pytest.mark.parametrize("shape", sorted(MAKERS))
def test_iso_without_noprompt_image_fails_saying_so(tmp_path: Path, shape: str) -> None:
    iso = MAKERS[shape](tmp_path, unique(tmp_path, "old"), IMAGES, noprompt=False)
    work = project(tmp_path, iso, 'edition = "Windows 10 Pro"')
    proc = try_build(work, "windowsIsoNoPrompt")
    assert proc.returncode != 0
    assert f"has no {NOPROMPT}: UEFI setup from it would wait for a key press" in proc.stderr


@pytest.mark.parametrize(
    ("shape", "edition", "error"),
    [
        ("xorriso", 'edition = "Windows 10 Pro"', None),
        ("microsoft-shaped", 'edition = "Windows 10 Pro"', None),
        ("microsoft-shaped", "image_index = 1", None),
        ("xorriso", 'edition = "Windows 11 Pro"',
         "windows.edition 'Windows 11 Pro' is not an image of this ISO; "
         "it has 1: 'Windows 11 Home'; 2: 'Windows 10 Pro'"),
        ("microsoft-shaped", 'edition = "Windows 11 Pro"',
         "windows.edition 'Windows 11 Pro' is not an image of this ISO; "
         "it has 1: 'Windows 11 Home'; 2: 'Windows 10 Pro'"),
        ("xorriso", "image_index = 3",
         "windows.image_index 3 is not an image of this ISO; "
         "it has 1: 'Windows 11 Home'; 2: 'Windows 10 Pro'"),
    ],
)  # fmt: skip
def test_edition_checked_against_the_wim(
    tmp_path: Path, shape: str, edition: str, error: str | None
) -> None:
    iso = MAKERS[shape](tmp_path, unique(tmp_path, "ed"), IMAGES)
    work = project(tmp_path, iso, edition + '\nproduct_key = "none"')
    proc = try_build(work, "editionCheck")
    if error is None:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Name:                   Windows 10 Pro" in Path(proc.stdout.strip()).read_text()
    else:
        assert proc.returncode != 0
        assert error in proc.stderr, proc.stderr[-2000:]


# Images as the media that stop an unattended Setup have them (fake_iso.FakeImage: wimlib sets
# the same XML properties Microsoft's images carry).
ENGLISH_INTERNATIONAL = (FakeImage("Windows 11 Home", languages=("en-GB",)),
                         FakeImage("Windows 10 Pro", languages=("en-GB", "fr-FR")))  # fmt: skip
X86 = (FakeImage("Windows 11 Home"), FakeImage("Windows 10 Pro", arch="0"))
EVAL = (FakeImage("Windows Server 2022 SERVERSTANDARD", edition_id="ServerStandardEval"),)
SERVER = 'edition = "Windows Server 2022 SERVERSTANDARD"'
SERVER_PASSWORD = 'account = { user = "wingen", password = "Wg-build-1" }'


@pytest.mark.parametrize(
    ("images", "config", "error"),
    [
        (ENGLISH_INTERNATIONAL, 'edition = "Windows 10 Pro"',
         "windows.language 'en-US' is not a language of image 2: 'Windows 10 Pro', x86_64, "
         "Edition ID Professional, languages en-GB fr-FR (default en-GB) "
         "(set windows.language = 'en-GB')"),
        (ENGLISH_INTERNATIONAL, 'edition = "Windows 10 Pro"\nlanguage = "fr-FR"', None),
        (X86, 'edition = "Windows 10 Pro"',
         "windows.architecture is 'x86_64' but image 2: 'Windows 10 Pro', x86, "
         "Edition ID Professional, languages en-US (default en-US) "
         "(set windows.architecture = 'i686', or use an ISO of that architecture)"),
        (EVAL, f'{SERVER}\nproduct_key = "generic"\n{SERVER_PASSWORD}',
         'windows.product_key "generic" is a KMS client key, which evaluation media refuse; '
         "image 1: 'Windows Server 2022 SERVERSTANDARD', x86_64, Edition ID ServerStandardEval, "
         'languages en-US (default en-US) (set windows.product_key = "none")'),
        (EVAL, f'{SERVER}\nproduct_key = "none"\n{SERVER_PASSWORD}', None),
    ],
    ids=["language not on the image", "a language of the image", "the other architecture",
         "generic key on Eval media", "no key on Eval media"],
)  # fmt: skip
def test_edition_check_reads_language_architecture_and_channel(
    tmp_path: Path, images: tuple[FakeImage, ...], config: str, error: str | None
) -> None:
    iso = microsoft_shaped_iso(tmp_path, unique(tmp_path, "props"), images)
    work = project(tmp_path, iso, config)
    proc = try_build(work, "editionCheck")
    if error is None:
        assert proc.returncode == 0, proc.stderr[-2000:]
    else:
        assert proc.returncode != 0
        assert error in proc.stderr, proc.stderr[-2000:]


def test_edition_check_reads_wimlibs_info(tmp_path: Path) -> None:
    """The fields, as the real `wimlib-imagex info` prints them."""
    tree = windows_tree(tmp_path, (*EVAL, FakeImage("Windows 10 Pro", languages=("de-DE",))))
    info = subprocess.run(
        ["wimlib-imagex", "info", str(tree / "sources" / "install.wim")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    images = winiso.wim_images(info)
    assert images == [
        winiso.WimImage(1, "Windows Server 2022 SERVERSTANDARD", "x86_64", "ServerStandardEval",
                        ("en-US",), "en-US"),
        winiso.WimImage(2, "Windows 10 Pro", "x86_64", "Professional", ("de-DE",), "de-DE"),
    ]  # fmt: skip
    ok = winiso.check_edition(info, "Windows 10 Pro", None, language="de-DE", arch="x86_64")
    assert ok.endswith("fits the config")
