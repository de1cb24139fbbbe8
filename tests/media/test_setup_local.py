"""The setup.exe stand-in (setup_local) against what setup's own download mode names a mirror's
folder, and the name wingen gives the folder on the Cygwin ISO."""

from __future__ import annotations

from urllib.parse import quote

from wingen.media import SITE_DIR

from . import setup_local
from .helpers import TIME_MACHINE


def test_escape_part_is_setup_download_folder_name() -> None:
    # download.cc names a mirror's folder rfc1738_escape_part(URL + "/"): ':' and '/' as %3a, %2f
    name = setup_local.escape_part(TIME_MACHINE + "/")
    assert name == quote(TIME_MACHINE + "/", safe="").replace("%3A", "%3a").replace("%2F", "%2f")
    assert len(name) == 109  # longer than a Joliet name may be (103)
    assert setup_local.unescape(name) == TIME_MACHINE + "/"
    assert setup_local.escape_part("a b~%") == "a%20b%7e%25"
    assert setup_local.unescape("%%41%00%4") == "%41%%4"  # traced through rfc1738.cc by hand


def test_setup_finds_a_mirror_in_any_folder_it_does_not_escape() -> None:
    ini = f"/cygwin/{SITE_DIR}/x86_64/setup.ini"
    assert setup_local.mirror_keys([ini, "/setup-x86_64.exe"], "/cygwin", "x86_64") == [SITE_DIR]
    assert setup_local.escape_part(setup_local.unescape(SITE_DIR)) == SITE_DIR
    path = setup_local.tarball_path("/cygwin", SITE_DIR, "x86_64/release/make/make-1.tar.xz")
    assert path == f"/cygwin/{SITE_DIR}/x86_64/release/make/make-1.tar.xz"
    # a folder named "%41" would be looked in as "A": such a name would not do
    assert setup_local.tarball_path("/cygwin", setup_local.unescape("%41"), "x") == "/cygwin/A/x"
    # the single-mirror layout: setup.ini right under the local package dir's <arch>/
    assert setup_local.mirror_keys(["/cygwin/X86_64/setup.ini"], "/cygwin", "x86_64") == [""]
