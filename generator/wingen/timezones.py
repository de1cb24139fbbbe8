"""Windows time zones: the IDs Autounattend takes, and the numeric index winnt.sif takes.

Vista and later take a Windows time zone ID in `<TimeZone>`, optionally with the documented
`_dstoff` suffix (Microsoft Learn, "TimeZone", microsoft-windows-shell-setup-timezone). The IDs
come from CLDR's windowsZones table as PyPI's tzlocal ships it (`tzlocal.windows_tz`), which also
maps IANA names to them: an IANA name is refused with its Windows ID as the fix.
XP/2003's winnt.sif takes a number: Microsoft's table below.
"""

from __future__ import annotations

import difflib
import re

from tzlocal.windows_tz import tz_win, win_tz

DSTOFF = "_dstoff"

# Microsoft, "Microsoft Time Zone Index Values" (learn.microsoft.com/en-us/previous-versions/
# windows/embedded/ms912391(v=winembedded.11)): the whole table, index → the name it gives. The
# same numbers are each zone's `Index` value under HKLM\SOFTWARE\Microsoft\Windows NT\
# CurrentVersion\Time Zones on XP/2003.
XP_TIME_ZONE_INDEX = {
    0: "Dateline Standard Time", 1: "Samoa Standard Time", 2: "Hawaiian Standard Time",
    3: "Alaskan Standard Time", 4: "Pacific Standard Time", 10: "Mountain Standard Time",
    13: "Mexico Standard Time 2", 15: "U.S. Mountain Standard Time",
    20: "Central Standard Time", 25: "Canada Central Standard Time", 30: "Mexico Standard Time",
    33: "Central America Standard Time", 35: "Eastern Standard Time",
    40: "U.S. Eastern Standard Time", 45: "S.A. Pacific Standard Time",
    50: "Atlantic Standard Time", 55: "S.A. Western Standard Time",
    56: "Pacific S.A. Standard Time", 60: "Newfoundland Standard Time",
    65: "E. South America Standard Time", 70: "S.A. Eastern Standard Time",
    73: "Greenland Standard Time", 75: "Mid-Atlantic Standard Time", 80: "Azores Standard Time",
    83: "Cape Verde Standard Time", 85: "GMT Standard Time", 90: "Greenwich Standard Time",
    95: "Central Europe Standard Time", 100: "Central European Standard Time",
    105: "Romance Standard Time", 110: "W. Europe Standard Time",
    113: "W. Central Africa Standard Time", 115: "E. Europe Standard Time",
    120: "Egypt Standard Time", 125: "FLE Standard Time", 130: "GTB Standard Time",
    135: "Israel Standard Time", 140: "South Africa Standard Time",
    145: "Russian Standard Time", 150: "Arab Standard Time", 155: "E. Africa Standard Time",
    158: "Arabic Standard Time", 160: "Iran Standard Time", 165: "Arabian Standard Time",
    170: "Caucasus Standard Time", 175: "Afghanistan Standard Time",
    180: "Ekaterinburg Standard Time", 185: "West Asia Standard Time",
    190: "India Standard Time", 193: "Nepal Standard Time", 195: "Central Asia Standard Time",
    200: "Sri Lanka Standard Time", 201: "N. Central Asia Standard Time",
    203: "Myanmar Standard Time", 205: "S.E. Asia Standard Time",
    207: "North Asia Standard Time", 210: "China Standard Time",
    215: "Singapore Standard Time", 220: "Taipei Standard Time",
    225: "W. Australia Standard Time", 227: "North Asia East Standard Time",
    230: "Korea Standard Time", 235: "Tokyo Standard Time", 240: "Yakutsk Standard Time",
    245: "A.U.S. Central Standard Time", 250: "Cen. Australia Standard Time",
    255: "A.U.S. Eastern Standard Time", 260: "E. Australia Standard Time",
    265: "Tasmania Standard Time", 270: "Vladivostok Standard Time",
    275: "West Pacific Standard Time", 280: "Central Pacific Standard Time",
    285: "Fiji Islands Standard Time", 290: "New Zealand Standard Time",
    300: "Tonga Standard Time",
}  # fmt: skip


def _registry_spelling(name: str) -> str:
    """The table writes some IDs with dotted acronyms ("S.A. Pacific"); the registry keys and
    CLDR don't ("SA Pacific Standard Time", "US Mountain", "AUS Eastern", "SE Asia")."""
    for dotted in ("A.U.S.", "U.S.", "S.A.", "S.E."):
        name = name.replace(dotted, dotted.replace(".", ""))
    return name


_XP_BY_NAME = {
    **{_registry_spelling(n).casefold(): i for i, n in XP_TIME_ZONE_INDEX.items()},
    **{n.casefold(): i for i, n in XP_TIME_ZONE_INDEX.items()},
    # XP has no "UTC" zone; Greenwich Standard Time is UTC without daylight saving.
    "utc": 90,
}


def windows_ids() -> frozenset[str]:
    return frozenset(win_tz)


def windows_id_for(iana: str) -> str | None:
    """The Windows ID CLDR maps an IANA name to, if `iana` is one."""
    return tz_win.get(iana)


def check_windows_id(name: str) -> tuple[str, str] | None:
    """None if Autounattend takes `name`; else (problem, fix)."""
    base = name.removesuffix(DSTOFF)
    if base in win_tz:
        return None
    mapped = windows_id_for(name)
    if mapped is not None:
        return (
            f"{name!r} is an IANA time zone name; Windows takes its own time zone IDs",
            f'use "{mapped}" (what CLDR\'s windowsZones maps {name} to)',
        )
    close = difflib.get_close_matches(base, sorted(win_tz), n=1)
    hint = f'such as "{close[0]}"' if close else 'such as "UTC" or "W. Europe Standard Time"'
    return (
        f"{name!r} is not a Windows time zone ID",
        f"use one `tzutil /l` lists (CLDR windowsZones), {hint}",
    )


def xp_time_zone(name: str) -> int | None:
    """winnt.sif's TimeZone index for a zone name, or an index given as digits; None if
    Microsoft's table has no such zone."""
    if re.fullmatch(r"[0-9]{1,3}", name):
        return int(name) if int(name) in XP_TIME_ZONE_INDEX else None
    return _XP_BY_NAME.get(name.casefold())


def check_xp_time_zone(name: str) -> tuple[str, str] | None:
    """None if winnt.sif can take `name`; else (problem, fix)."""
    if xp_time_zone(name) is not None:
        return None
    mapped = windows_id_for(name)
    if mapped is not None and xp_time_zone(mapped) is not None:
        return (
            f"{name!r} is an IANA time zone name; winnt.sif takes Microsoft's time zone index",
            f'use "{mapped}" (index {xp_time_zone(mapped)})',
        )
    return (
        f"{name!r} is not in Microsoft's XP/2003 time zone index table",
        'use a name or index from "Microsoft Time Zone Index Values", such as '
        '"W. Europe Standard Time" or "110"',
    )
