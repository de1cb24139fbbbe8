"""The Windows guest's QEMU devices, read from the rendered stages by real Nix (stand-in set):
a VGA display in every stage, the NIC each Windows family has a driver for, and the CD an install
boots (the no-prompt copy under UEFI)."""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOT, nix_eval, windows_example
from wingen.loader import parse_config
from wingen.render import render

from .helpers import TIME_MACHINE

pytestmark = pytest.mark.nix
STANDIN = ROOT / "nix" / "standin" / "default.nix"


def guest_args(tmp: Path, **windows: Any) -> dict[str, list[str]]:
    """Each stage's guest QEMU args (install, base) for the example with `windows` changed."""
    config = windows_example(tmp)
    data = tomllib.loads(config.read_text())
    data["windows"] |= windows
    if windows.get("answer_file") == "winnt-sif":
        data["cygwin"]["mirror"] = TIME_MACHINE
    rendered = tmp / "default.nix"
    rendered.write_text(render(parse_config(data), tmp).expression)
    spec = "stage: builtins.fromJSON (builtins.unsafeDiscardStringContext stage.wingenSpec)"
    got = nix_eval(
        f"let w = (import {STANDIN} {{ }}).callPackage {rendered} {{ }}; spec = {spec}; "
        'guest = s: (builtins.head (builtins.filter (v: v.name == "guest") (spec s).vms)).args; '
        "in { install = guest w.installed; base = guest w.base; }"
    )
    assert isinstance(got, dict)
    return got


def device(args: list[str], prefix: str) -> list[str]:
    return [b for a, b in itertools.pairwise(args) if a == "-device" and b.startswith(prefix)]


def test_uefi_windows_11_gets_vga_e1000_and_boots_the_noprompt_copy(tmp_path: Path) -> None:
    args = guest_args(tmp_path)  # the example: Windows 11 Pro, UEFI, no virtio
    for stage in ("install", "base"):
        assert device(args[stage], "VGA") == ["VGA"], stage
        assert [d.split(",")[0] for d in device(args[stage], "e1000")] == ["e1000"]
    cds = [a for a in args["install"] if "media=cdrom" in a]
    assert "-noprompt-Win11_24H2_English_x64.iso" in cds[0]  # the first CD: the Windows ISO


def test_xp_gets_rtl8139_and_boots_the_iso_itself(tmp_path: Path) -> None:
    args = guest_args(
        tmp_path, edition="Windows XP Professional", answer_file="winnt-sif", firmware="bios",
        product_key="BCDFG-HJKMP-QRTVW-XY234-6789B",
    )  # fmt: skip
    for stage in ("install", "base"):
        assert [d.split(",")[0] for d in device(args[stage], "rtl8139")] == ["rtl8139"], stage
        assert device(args[stage], "e1000") == []
        assert device(args[stage], "VGA") == ["VGA"]
    cds = [a for a in args["install"] if "media=cdrom" in a]
    assert "noprompt" not in cds[0] and cds[0].endswith(
        "Win11_24H2_English_x64.iso,if=ide,index=1,media=cdrom,readonly=on"
    )
    assert json.dumps(args).count("if=floppy") == 1  # winnt.sif on the floppy, install only
