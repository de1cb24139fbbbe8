"""The README's support table is what the config accepts: each row's families, with each firmware,
are accepted exactly when the table says "supported" (and only with what the row asks for: a Cygwin
Time Machine mirror, a key of your own), and refused otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import ROOT
from wingen.errors import UserError

from .helpers import TIME_MACHINE, windows_cfg

FAMILIES = {
    "Windows 11": ["Windows 11 Pro"],
    "Windows 10, 8.1": ["Windows 10 Pro", "Windows 8.1 Pro"],
    "Server 2012 R2 → 2025": [
        "Windows Server 2012 R2 SERVERSTANDARD", "Windows Server 2025 SERVERDATACENTERCORE",
    ],
    "Windows 7, Vista, Server 2008 R2": [
        "Windows 7 Professional", "Windows Vista Business", "Windows Server 2008 R2 SERVERSTANDARD",
    ],
    "XP, Server 2003": ["Windows XP Professional", "Windows Server 2003 Standard"],
}  # fmt: skip
KEY = "BCDFG-HJKMP-QRTVW-XY234-6789B"


def table() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Windows editions, firmware and answer files", 1)[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[c.strip().strip("`") for c in r.strip("|").split("|")] for r in rows[1:]]


def accepted(edition: str, answer: str, firmware: str, arch: str, **extra: Any) -> bool:
    windows = {"edition": edition, "answer_file": answer, "firmware": firmware,
               "architecture": arch, "product_key": extra.get("key", "none")}  # fmt: skip
    mirror = {"mirror": TIME_MACHINE} if extra.get("mirror") else {}
    try:
        windows_cfg(windows, cygwin=mirror)
    except UserError:
        return False
    return True


def cases() -> list[tuple[str, str, str, str, str]]:
    out = []
    for family, answer, bios, uefi in table():
        if family.startswith("any of these"):
            # "as above": each family's own needs (XP's key) besides the row's
            for fam, editions in FAMILIES.items():
                xp = fam.startswith("XP")
                ans, key = ("winnt-sif", " and your own key") if xp else ("autounattend", "")
                for fw, claim in (("bios", bios), ("uefi", uefi)):
                    need = claim + key if claim != "refused" else claim
                    out += [(e, ans, fw, "i686", need) for e in editions]
            continue
        if family.startswith("XP/2003 with"):
            for e in FAMILIES["XP, Server 2003"]:
                out += [(e, "autounattend", "bios", "x86_64", bios)]
            for e in FAMILIES["Windows 10, 8.1"]:
                out += [
                    (e, "winnt-sif", "bios", "x86_64", bios),
                    (e, "winnt-sif", "uefi", "x86_64", uefi),
                ]
            continue
        for e in FAMILIES[family]:
            out += [(e, answer, "bios", "x86_64", bios), (e, answer, "uefi", "x86_64", uefi)]
    return out


def test_the_table_covers_every_family() -> None:
    assert [row[0] for row in table()][: len(FAMILIES)] == list(FAMILIES)
    assert len(cases()) > 30


@pytest.mark.parametrize(("edition", "answer", "firmware", "arch", "claim"), cases())
def test_row_holds(edition: str, answer: str, firmware: str, arch: str, claim: str) -> None:
    assert claim == "refused" or claim.startswith("supported"), claim
    needs = {"mirror": "Time Machine" in claim, "key": KEY if "your own key" in claim else None}
    ok = accepted(edition, answer, firmware, arch, **{k: v for k, v in needs.items() if v})
    assert ok == (claim != "refused"), (edition, answer, firmware, arch, claim)
    if ok:  # and only with what the row asks for
        for need in [k for k, v in needs.items() if v]:
            rest = {k: v for k, v in needs.items() if v and k != need}
            assert not accepted(edition, answer, firmware, arch, **rest), (need, edition)
