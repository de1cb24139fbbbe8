"""The generic-key table is well formed and drives the answer file's key."""

from __future__ import annotations

import re

from wingen.editions import EDITIONS, find_edition
from wingen.loader import parse_config

KEY = re.compile(r"^[BCDFGHJKMNPQRTVWXY2346789]{5}(-[BCDFGHJKMNPQRTVWXY2346789]{5}){4}$")


def test_every_generic_key_is_a_valid_key() -> None:
    for edition in EDITIONS:
        if edition.generic_key is not None:
            assert KEY.match(edition.generic_key), edition


def test_names_are_unique_and_found_case_insensitively() -> None:
    names = [e.name.casefold() for e in EDITIONS]
    assert len(names) == len(set(names))
    assert find_edition("windows server 2022 serverstandard") is not None


def _windows(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"iso": {"name": "w.iso", "sha256": "0" * 64}}
    return {"guest": "windows", "windows": base | fields}


def test_key_choice() -> None:
    generic = parse_config(_windows(edition="Windows 11 Pro", product_key="generic"))
    assert generic.windows is not None and generic.windows.key == "W269N-WFGWX-YVC9B-4J6C9-T83GX"
    none = parse_config(_windows(edition="Windows 11 Pro"))
    assert none.windows is not None and none.windows.key is None
    custom = parse_config(_windows(image_index=3, product_key="vk7jg-nphtm-c97jm-9mpgt-3v66t"))
    assert custom.windows is not None and custom.windows.key == "VK7JG-NPHTM-C97JM-9MPGT-3V66T"
