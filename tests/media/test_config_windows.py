"""Windows combinations that cannot install: each is refused with exit 2 and the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import ROOT, assert_render_refuses, wingen
from wingen.timezones import XP_TIME_ZONE_INDEX, xp_time_zone

from .helpers import TIME_MACHINE

EXAMPLE = (ROOT / "examples" / "wingen.toml").read_text()


def _edit(*pairs: tuple[str, str]) -> str:
    text = EXAMPLE
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


TM_MIRROR = (
    'mirror = "https://mirrors.kernel.org/sourceware/cygwin"',
    f'mirror = "{TIME_MACHINE}"',
)
XP = (
    ('edition = "Windows 11 Pro"', 'edition = "Windows XP Professional"'),
    ('answer_file = "autounattend"', 'answer_file = "winnt-sif"'),
    ('firmware = "uefi"', 'firmware = "bios"'),
    ('product_key = "generic"', 'product_key = "BCDFG-HJKMP-QRTVW-XY234-6789B"'),
    TM_MIRROR,
)
VIRTIO = ("# virtio_iso = {", "virtio_iso = {")
VIRTIO_HASH = ('sha256 = "…" }', f'sha256 = "{"1" * 64}" }}')

CASES = {
    "XP with virtio drivers": (_edit(*XP, VIRTIO, VIRTIO_HASH), "windows.virtio_iso"),
    "XP without a key": (
        _edit(*XP[:-2], ('product_key = "generic"', 'product_key = "none"'), XP[-1]),
        "windows.product_key",
    ),
    "i686 with UEFI": (
        _edit(('architecture = "x86_64"', 'architecture = "i686"')),
        "windows.firmware",
    ),
    "Windows 7 with UEFI": (
        _edit(('edition = "Windows 11 Pro"', 'edition = "Windows 7 Professional"'), TM_MIRROR),
        "windows.firmware",
    ),
    "Windows 11 on 32 GiB": (
        _edit(("disk_size_gib = 64", "disk_size_gib = 32")),
        "vm.disk_size_gib",
    ),
    "Windows 11 on one CPU": (_edit(("cpus = 2", "cpus = 1")), "vm.cpus"),
    "Windows 7 with current Cygwin": (
        _edit(
            ('edition = "Windows 11 Pro"', 'edition = "Windows 7 Professional"'),
            ('firmware = "uefi"', 'firmware = "bios"'),
        ),
        "cygwin.mirror",
    ),
    "32-bit Windows 10 with current Cygwin": (
        _edit(
            ('edition = "Windows 11 Pro"', 'edition = "Windows 10 Pro"'),
            ('firmware = "uefi"', 'firmware = "bios"'),
            ('architecture = "x86_64"', 'architecture = "i686"'),
        ),
        "cygwin.mirror",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_with_the_field_named(name: str, tmp_path: Path) -> None:
    text, field = CASES[name]
    assert_render_refuses(text, field, tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        _edit(*XP),
        _edit(
            ('edition = "Windows 11 Pro"', 'edition = "Windows 7 Professional"'),
            ('firmware = "uefi"', 'firmware = "bios"'),
            TM_MIRROR,
        ),
    ],
    ids=["XP with key and Time Machine", "Windows 7 with Time Machine"],
)
def test_old_windows_with_a_time_machine_mirror_is_accepted(text: str, tmp_path: Path) -> None:
    config = tmp_path / "wingen.toml"
    config.write_text(text)
    proc = wingen("check", "-c", str(config))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("pairs", "says"),
    [
        ((('time_zone = "UTC"', 'time_zone = "Europe/Berlin"'),),
         'windows.time_zone: \'Europe/Berlin\' is an IANA time zone name; Windows takes its own '
         'time zone IDs (use "W. Europe Standard Time"'),
        ((('time_zone = "UTC"', 'time_zone = "Mars Standard Time"'),),
         "windows.time_zone: 'Mars Standard Time' is not a Windows time zone ID"),
        ((*XP, ('time_zone = "UTC"', 'time_zone = "America/New_York"')),
         'windows.time_zone: \'America/New_York\' is an IANA time zone name; winnt.sif takes '
         'Microsoft\'s time zone index (use "Eastern Standard Time" (index 35))'),
        ((*XP, ('time_zone = "UTC"', 'time_zone = "999"')),
         "windows.time_zone: '999' is not in Microsoft's XP/2003 time zone index table"),
    ],
    ids=["IANA name", "no such zone", "IANA name for XP", "no such XP index"],
)  # fmt: skip
def test_check_refuses_a_time_zone_windows_does_not_take(
    pairs: tuple[tuple[str, str], ...], says: str, tmp_path: Path
) -> None:
    config = tmp_path / "wingen.toml"
    config.write_text(_edit(*pairs))
    proc = wingen("check", "-c", str(config))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert says in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "zone", ["W. Europe Standard Time", "Pacific Standard Time_dstoff", "Jordan Standard Time"]
)
def test_windows_time_zone_ids_are_accepted(zone: str, tmp_path: Path) -> None:
    config = tmp_path / "wingen.toml"
    config.write_text(_edit(('time_zone = "UTC"', f'time_zone = "{zone}"')))
    proc = wingen("check", "-c", str(config))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("zone", "index"),
    [("Tonga Standard Time", 300), ("SA Pacific Standard Time", 45),
     ("S.A. Pacific Standard Time", 45), ("Nepal Standard Time", 193), ("UTC", 90), ("083", 83)],
)  # fmt: skip
def test_winnt_sif_takes_microsofts_whole_index_table(zone: str, index: int) -> None:
    assert xp_time_zone(zone) == index
    assert len(XP_TIME_ZONE_INDEX) == 75  # every row of "Microsoft Time Zone Index Values"
