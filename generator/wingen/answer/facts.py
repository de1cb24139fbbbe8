"""Values the Windows templates need that follow from the config (kept out of the templates)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from ..config import Config, Windows
from ..errors import UserError
from ..shares import SHARES

# Drive letters Windows may give the CD-ROMs (Windows ISO, Cygwin ISO, answer ISO, virtio ISO).
CD_LETTERS = tuple("DEFGHIJKLMNOPQRSTUVWXYZ")
# What the first logon runs: find the Cygwin CD by its install script, whatever its letter.
INSTALL_SCRIPT = r"wingen\install.cmd"
# virtio-win driver folders wingen points Windows setup at (storage, network, serial, balloon).
VIRTIO_DRIVERS = ("viostor", "vioscsi", "NetKVM", "vioserial", "Balloon")

# XP/2003 take a numeric time zone index (Microsoft "Microsoft Time Zone Index Values");
# Vista and later take the names on the left. XP has no "UTC": Greenwich Standard Time has no DST.
XP_TIME_ZONES = {
    "UTC": 90,
    "Greenwich Standard Time": 90,
    "GMT Standard Time": 85,
    "W. Europe Standard Time": 110,
    "Central Europe Standard Time": 95,
    "Central European Standard Time": 100,
    "Romance Standard Time": 105,
    "E. Europe Standard Time": 115,
    "FLE Standard Time": 125,
    "Russian Standard Time": 145,
    "India Standard Time": 190,
    "China Standard Time": 210,
    "Tokyo Standard Time": 235,
    "AUS Eastern Standard Time": 255,
    "Eastern Standard Time": 35,
    "Central Standard Time": 20,
    "Mountain Standard Time": 10,
    "Pacific Standard Time": 4,
}

# virtio-win's per-OS folder names, by edition prefix (longest first wins).
_VIRTIO_OS = (
    ("Windows Server 2008 R2", "2k8R2"),
    ("Windows Server 2012 R2", "2k12R2"),
    ("Windows Server 2016", "2k16"),
    ("Windows Server 2019", "2k19"),
    ("Windows Server 2022", "2k22"),
    ("Windows Server 2025", "2k25"),
    ("Windows 11", "w11"),
    ("Windows 10", "w10"),
    ("Windows 8.1", "w8.1"),
    ("Windows 7", "w7"),
    ("Windows Vista", "2k8"),
)
_LEGACY = ("Windows Vista", "Windows 7", "Windows Server 2008")


@dataclass(frozen=True)
class WinFacts:
    arch: str  # processorArchitecture: amd64 or x86
    cygwin_arch: str  # x86_64 or x86
    setup_exe: str  # setup-x86_64.exe or setup-x86.exe
    cygwin_root: str  # C:\cygwin64 or C:\cygwin
    modern: bool  # Windows 8 / Server 2012 and later (OOBE settings Vista/7 reject)
    image_key: str  # /IMAGE/INDEX or /IMAGE/NAME
    image_value: str
    install_partition: int
    virtio_paths: tuple[str, ...]
    first_logon: str  # one cmd.exe command line
    mac: str  # the guest NIC as Windows writes it: 52-54-00-12-01-01
    shares: tuple[tuple[str, str], ...]

    @staticmethod
    def of(cfg: Config) -> WinFacts:
        win = cfg.windows
        assert win is not None
        x64 = win.architecture == "x86_64"
        edition = win.edition or ""
        letters = " ".join(CD_LETTERS)
        first_logon = (
            f'cmd.exe /c "for %d in ({letters}) do @if exist %d:\\{INSTALL_SCRIPT} '
            f'call %d:\\{INSTALL_SCRIPT}"'
        )
        if win.image_index is not None:
            key, value = "/IMAGE/INDEX", str(win.image_index)
        else:
            key, value = "/IMAGE/NAME", edition
        return WinFacts(
            arch="amd64" if x64 else "x86",
            cygwin_arch="x86_64" if x64 else "x86",
            setup_exe="setup-x86_64.exe" if x64 else "setup-x86.exe",
            cygwin_root="C:\\cygwin64" if x64 else "C:\\cygwin",
            modern=not edition.startswith(_LEGACY),
            image_key=key,
            image_value=value,
            install_partition=3 if win.firmware == "uefi" else 1,
            virtio_paths=_virtio_paths(win) if win.virtio_iso is not None else (),
            first_logon=first_logon,
            mac=cfg.network.guest_mac.upper().replace(":", "-"),
            shares=SHARES,
        )

    def xp_time_zone(self, win: Windows) -> int:
        if win.time_zone.isdigit():
            return int(win.time_zone)
        if win.time_zone in XP_TIME_ZONES:
            return XP_TIME_ZONES[win.time_zone]
        raise UserError(
            "windows.time_zone",
            f"{win.time_zone!r} has no XP/2003 time zone index wingen knows",
            "give the numeric index from Microsoft's time zone index table, or one of: "
            + ", ".join(sorted(XP_TIME_ZONES)),
        )


def _virtio_paths(win: Windows) -> tuple[str, ...]:
    edition = win.edition or ""
    matches = [os for prefix, os in _VIRTIO_OS if edition.startswith(prefix)]
    oses = matches[:1] or ["w11", "w10"]  # by image index only: let Windows rank both
    arch = "amd64" if win.architecture == "x86_64" else "x86"
    return tuple(
        f"{letter}:\\{drv}\\{os}\\{arch}"
        for letter in CD_LETTERS[:8]
        for drv in VIRTIO_DRIVERS
        for os in oses
    )


def mirror_dir(mirror: str) -> str:
    """The directory name setup.exe gives a mirror in its local package dir (URL-encoded)."""
    encoded = quote(mirror.rstrip("/") + "/", safe="")
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)
