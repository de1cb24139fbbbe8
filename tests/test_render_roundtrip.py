"""Arbitrary text in every free-text field survives rendering: real Nix evaluates the rendered
config back to the same values, and bash reads each rendered shell word back unchanged."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helpers import ROOT, nix_eval
from wingen.config import Config
from wingen.editions import EDITIONS
from wingen.render import environment, render
from wingen.timezones import windows_ids

pytestmark = pytest.mark.nix

# Config text refuses control characters, tab and line breaks included (every value is one line);
# `nasty` brings what quoting gets wrong, `free` adds tab and line breaks for the shell filter.
text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=30,
)
NASTY = "'\"\\${} $`;&|<>()*?~# a"
nasty = st.text(alphabet=NASTY, max_size=20)
line = st.one_of(text, nasty)
free = st.one_of(text, st.text(alphabet=NASTY + "\n\t", max_size=20))
# A mirror URL takes anything after the scheme but whitespace, quotes and backslashes.
mirror = st.text(
    alphabet=NASTY.replace(" ", "").replace("'", "").replace('"', "").replace("\\", ""), min_size=1
)
qemu_arg = line.filter(lambda s: not s.startswith("-")) | st.sampled_from(["-usb", "--no-hpet"])
drv_name = st.from_regex(r"\A[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]{0,20}\Z")
user = st.from_regex(r'\A[^"/\\\[\]:;|=,+*?<>@\x00-\x1f\x7f\ufffe\uffff]{1,20}\Z')
computer = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,14}\Z")
package = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,20}\Z")
zone = st.sampled_from(sorted(windows_ids()))
nt6 = st.sampled_from([e.name for e in EDITIONS if e.family == "nt6"])


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "name": draw(drv_name),
        "guest": "windows",
        "windows": {
            "iso": {"url": draw(line) + "/" + draw(drv_name), "sha256": "0" * 64},
            "edition": draw(nt6),
            "time_zone": draw(zone) + draw(st.sampled_from(["", "_dstoff"])),
            "computer_name": draw(computer),
            "account": {"user": draw(user), "password": draw(line)},
        },
        "vm": {"extra_qemu_args": draw(st.lists(qemu_arg, max_size=4))},
        "cygwin": {
            "packages": draw(st.lists(package, max_size=4)),
            "mirror": "https://" + draw(mirror),
            "lock_file": draw(line),
        },
    }


def _valid(data: dict[str, Any]) -> Config | None:
    try:
        return Config.model_validate(data)
    except ValueError:
        return None  # e.g. a URL whose last part is no store name: refused, never rendered


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_nix_reads_back_every_field(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]
) -> None:
    cfg = _valid(data)
    assume(cfg is not None)
    assert cfg is not None
    out = tmp_path_factory.mktemp("render") / "default.nix"
    out.write_text(render(cfg).expression)
    standin = ROOT / "nix" / "standin" / "default.nix"
    got = nix_eval(f"((import {standin} {{ }}).callPackage {out} {{ }}).wingenConfig")
    assert got == cfg.model_dump(mode="json")


@settings(max_examples=40, deadline=None)
@given(st.lists(free, min_size=1, max_size=6))
def test_bash_reads_back_rendered_words(values: list[str]) -> None:
    template = environment().from_string(
        "{% for v in values %}printf '%s\\0' {{ v | sh }}\n{% endfor %}"
    )
    script = template.render(values=values)
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    assert out.decode("utf-8", "surrogateescape").split("\0")[:-1] == values
