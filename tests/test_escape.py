"""The escaping filters, checked against the real readers: Nix, bash and an XML parser."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import nix_eval
from wingen.escape import comment, nix, nix_ident, nix_ind, nix_str, sh, sh_words, xml

# Nix and bash strings cannot hold NUL; everything else must survive.
texts = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40)
nasty = st.text(alphabet="'\"\\${}\n\r\t $`!*?~#;&|<>()[] a", max_size=24)
slow = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@slow
@given(st.lists(st.one_of(texts, nasty), min_size=1, max_size=8))
def test_nix_strings_read_back(values: list[str]) -> None:
    dq = "[" + " ".join(nix_str(v) for v in values) + "]"
    ind = "[" + " ".join("(''\n" + nix_ind(v) + "'')" for v in values) + "]"
    assert nix_eval(dq) == values
    assert nix_eval(ind) == values


@slow
@given(st.lists(st.one_of(texts, nasty), max_size=8))
def test_shell_words_read_back(values: list[str]) -> None:
    script = "for w in " + sh_words(values) + '; do printf "%s\\0" "$w"; done'
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    assert out.decode("utf-8", "surrogateescape").split("\0")[:-1] == values


@settings(max_examples=200)
@given(st.one_of(texts, nasty))
def test_xml_reads_back_as_text_and_attribute(value: str) -> None:
    try:
        escaped = xml(value)
    except ValueError:
        return  # a character XML 1.0 cannot carry is refused, never passed through
    root = ET.fromstring(f'<a b="{escaped}">{escaped}</a>')
    assert root.get("b") == value
    assert (root.text or "") == value


def test_nix_values_and_structures() -> None:
    data = {"a b": [1, True, None, "x${y}"], "if": {"k": "v"}, "n": -3}
    assert nix_eval(nix(data)) == data


def test_refusals() -> None:
    for bad in ("a\0b",):
        with pytest.raises(ValueError):
            nix_str(bad)
        with pytest.raises(ValueError):
            sh(bad)
    with pytest.raises(ValueError):
        xml("\x01")
    with pytest.raises(ValueError):
        nix_ident("rec")
    with pytest.raises(ValueError):
        nix_ident("a b")


def test_comment_keeps_one_line() -> None:
    assert comment("a\nb\r\n c") == "a b c"
    assert sh("plain-word_1.2") == "plain-word_1.2"
    assert sh("") == "''"
