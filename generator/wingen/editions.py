"""Windows editions wingen knows by name, with their generic (KMS client setup) keys.

The keys are Microsoft's published "KMS client setup keys": install keys that select an edition and
activate nothing. Source: Microsoft Learn, "Key Management Services (KMS) client activation and
product keys", learn.microsoft.com/windows-server/get-started/kms-client-activation-keys.
Editions without such a key (Home, XP, Server 2003) are known but have no generic key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["nt6", "nt5"]  # nt6: Autounattend.xml (Vista and later); nt5: winnt.sif (XP/2003)


# Editions current Cygwin no longer runs on. Cygwin's install page (cygwin.com/install.html):
# current Cygwin needs 64-bit Windows 8.1 / Server 2012 R2 or later; Cygwin 3.4 was the last for
# Windows 7, 8, Server 2008 R2 and 2012, 32-bit Cygwin ended with 3.3, and older Windows runs only
# a Cygwin Time Machine snapshot installed with `setup --allow-unsupported-windows`.
_OLD_FOR_CYGWIN = ("Windows XP", "Windows Server 2003", "Windows Vista", "Windows 7",
                   "Windows Server 2008")  # fmt: skip


# Editions wingen boots with BIOS only: dockur/windows installs Vista, 7 and 2008 (and older) in
# its legacy (BIOS) mode (src/define.sh isLegacy); their UEFI boot wants a CSM video BIOS, which
# OVMF lacks.
_BIOS_ONLY = _OLD_FOR_CYGWIN


@dataclass(frozen=True)
class Edition:
    name: str  # the image name in install.wim (what /IMAGE/NAME matches), or the XP product name
    family: Family
    generic_key: str | None

    @property
    def server(self) -> bool:
        """Server editions: their setup asks for the Administrator password (UserAccounts)."""
        return self.name.startswith("Windows Server")

    @property
    def windows11(self) -> bool:
        return self.name.startswith("Windows 11")

    @property
    def uefi(self) -> bool:
        return not self.name.startswith(_BIOS_ONLY)

    @property
    def current_cygwin(self) -> bool:
        """Whether today's Cygwin still runs on this edition (see _OLD_FOR_CYGWIN)."""
        return not self.name.startswith(_OLD_FOR_CYGWIN)


def _client(version: str) -> list[Edition]:
    keys = {
        "Pro": "W269N-WFGWX-YVC9B-4J6C9-T83GX",
        "Pro N": "MH37W-N47XK-V7XM9-C7227-GCQG9",
        "Pro for Workstations": "NRG8B-VKK3Q-CXVCJ-9G2XF-6Q84J",
        "Pro N for Workstations": "9FNHH-K3HBT-3W4TD-6383H-6XYWF",
        "Pro Education": "6TP4R-GNPTD-KYYHQ-7B7DP-J447Y",
        "Pro Education N": "YVWGF-BXNMC-HTQYQ-CPQ99-66QFC",
        "Education": "NW6C2-QMPVW-D7KKK-3GKT6-VCFB2",
        "Education N": "2WH4N-8QGBV-H22JP-CT43Q-MDWWJ",
        "Enterprise": "NPPR9-FWDCX-D2C8J-H872K-2YT43",
        "Enterprise N": "DPH2V-TTNVB-4X9Q3-TJR4H-KHJW4",
        "Enterprise LTSC": "M7XTQ-FN8P6-TTKYV-9D4CC-J462D",
        "IoT Enterprise LTSC": "KBN8V-HFGQ4-MGXVD-347P6-PDQGT",
        "Home": None,
        "Home N": None,
        "Home Single Language": None,
    }
    return [Edition(f"Windows {version} {e}", "nt6", k) for e, k in keys.items()]


def _server(year: str, standard: str, datacenter: str) -> list[Edition]:
    out = []
    for kind, key in (("STANDARD", standard), ("DATACENTER", datacenter)):
        for core in ("CORE", ""):
            out.append(Edition(f"Windows Server {year} SERVER{kind}{core}", "nt6", key))
    return out


EDITIONS: tuple[Edition, ...] = (
    *_client("11"),
    *_client("10"),
    Edition("Windows 8.1 Pro", "nt6", "GCRJD-8NW9H-F2CDX-CCM8D-9D6T9"),
    Edition("Windows 8.1 Enterprise", "nt6", "MHF9N-XY6XB-WVXMC-BTDCT-MKKG7"),
    Edition("Windows 7 Professional", "nt6", "FJ82H-XT6CR-J8D7P-XQJJ2-GPDD4"),
    Edition("Windows 7 Enterprise", "nt6", "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH"),
    Edition("Windows 7 Ultimate", "nt6", None),
    Edition("Windows Vista Business", "nt6", "YFKBB-PQJJV-G996G-VWGXY-2V3X8"),
    Edition("Windows Vista Enterprise", "nt6", "VKK3X-68KWM-X2YGT-QR4M6-4BWMV"),
    *_server("2025", "TVRH6-WHNXV-R9WG3-9XRFY-MY832", "D764K-2NDRG-47T6Q-P8T8W-YP6DF"),
    *_server("2022", "VDYBN-27WPP-V4HQT-9VMD4-VMK7H", "WX4NM-KYWYW-QJJR4-XV3QB-6VM33"),
    *_server("2019", "N69G4-B89J2-4G8F4-WWYCC-J464C", "WMDGN-G9PQG-XVVXX-R3X43-63DFG"),
    *_server("2016", "WC2BQ-8NRM3-FDDYY-2BFGV-KHKQY", "CB7KF-BWN84-R7R2Y-793K2-8XDDG"),
    *_server("2012 R2", "D2N9P-3P6X9-2R39C-7RTCD-MDVJX", "W3GGN-FT8W3-Y4M27-J84CP-Q3VJ9"),
    Edition("Windows Server 2008 R2 SERVERSTANDARD", "nt6", "YC6KT-GKW9T-YTKYR-T4X34-R7VHC"),
    Edition("Windows Server 2008 R2 SERVERENTERPRISE", "nt6", "489J6-VHDMP-X63PK-3K798-CPX3Y"),
    Edition("Windows Server 2008 R2 SERVERDATACENTER", "nt6", "74YFP-3QFB3-KQT8W-PMXWJ-7M648"),
    Edition("Windows XP Professional", "nt5", None),
    Edition("Windows XP Professional x64", "nt5", None),
    Edition("Windows Server 2003 Standard", "nt5", None),
    Edition("Windows Server 2003 Enterprise", "nt5", None),
)

_BY_NAME = {e.name.casefold(): e for e in EDITIONS}


def find_edition(name: str) -> Edition | None:
    """The edition with this image name, case-insensitively."""
    return _BY_NAME.get(name.casefold())
