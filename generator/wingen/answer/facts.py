"""Values the Windows templates need that follow from the config (kept out of the templates)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, Windows
from ..shares import SHARES
from ..timezones import xp_time_zone

# Drive letters Windows may give the CD-ROMs (Windows ISO, Cygwin ISO, answer ISO, virtio ISO).
CD_LETTERS = tuple("DEFGHIJKLMNOPQRSTUVWXYZ")
# What the first logon runs: find the Cygwin CD by its install script, whatever its letter.
INSTALL_SCRIPT = r"wingen\install.cmd"
# Windows 11 setup's hardware checks, each turned off by a LabConfig value of 1 (dockur/windows
# assets/win11x64.xml sets the first three; storage and CPU are checked by setup as well).
LABCONFIG = ("BypassTPMCheck", "BypassSecureBootCheck", "BypassRAMCheck", "BypassStorageCheck",
             "BypassCPUCheck")  # fmt: skip

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
    virtio_paths: tuple[str, ...]  # DriverPaths: the root of each CD the virtio ISO may be
    labconfig: tuple[str, ...]
    old_cygwin_setup: bool  # a Time Machine Cygwin on old Windows: setup needs a flag to run
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
            virtio_paths=_virtio_roots(win) if win.virtio_iso is not None else (),
            labconfig=LABCONFIG,
            old_cygwin_setup=win.old_for_cygwin and win.answer_file == "autounattend",
            first_logon=first_logon,
            mac=cfg.network.guest_mac.upper().replace(":", "-"),
            shares=SHARES,
        )

    def xp_time_zone(self, win: Windows) -> int:
        index = xp_time_zone(win.time_zone)
        assert index is not None, "config.Windows refuses the time zones XP has no index for"
        return index


def _virtio_roots(win: Windows) -> tuple[str, ...]:
    """One DriverPaths entry per drive root the virtio CD may get. Setup searches a path with its
    subfolders (rgl/windows-vagrant's answer files give only the drivers CD's root, `E:\\`) and
    PnP takes the INF that matches the OS and architecture, so no folder per driver and OS is
    needed and none that does not exist is listed. The CDs are, in IDE order: Windows, Cygwin,
    the answer ISO (UEFI only), virtio; WinPE letters them from D: (the floppy is A:)."""
    cds = 4 if win.firmware == "uefi" else 3
    return tuple(f"{letter}:\\" for letter in CD_LETTERS[:cds])
