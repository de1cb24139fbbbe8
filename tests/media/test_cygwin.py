"""setup.ini parser, closure resolver and lock writer, on a fixture written for these tests."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from wingen.cygwin import closure, lock, setup_ini
from wingen.errors import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "setup.ini"
MIRROR = "https://mirror.example/cygwin"

# Worked out by hand from fixtures/setup.ini: Base is base-files, bash, cygwin, dash, csih, tar;
# bash brings libreadline7 (not Base) → libncursesw10 (old `requires:`) → terminfo; csih needs
# the virtual perl5_036, which perl_base provides; make → libintl8; openssh → cygrunsrv,
# libcrypto3 → zlib0. Not: _autorebase/rebase (not asked for), oldlib (only in bash's [prev]),
# libzstd1 (only in cygwin's [test]).
EXPECTED = [
    "base-files", "bash", "csih", "cygrunsrv", "cygwin", "dash", "libcrypto3", "libintl8",
    "libncursesw10", "libreadline7", "make", "openssh", "perl_base", "tar", "terminfo",
    "zlib0",
]  # fmt: skip


def ini() -> setup_ini.SetupIni:
    return setup_ini.parse(FIXTURE.read_text(), "setup.ini")


def test_headers_and_packages() -> None:
    parsed = ini()
    assert parsed.arch == "x86_64"
    assert parsed.headers["setup-timestamp"] == "1735689600"
    assert parsed.headers["include-setup"] == "setup <2.878 not supported"
    assert "unused-old" in parsed.packages  # the `Package:` form
    assert "not-a-package" not in parsed.packages


def test_quoted_multiline_values() -> None:
    bash = ini().packages["bash"]
    ldesc = setup_ini.unquote(bash.get("ldesc") or "")
    assert ldesc.startswith("Bash is an sh-compatible shell.\n# this line")
    assert "\n\n@ not-a-package: this line" in ldesc
    assert ldesc.endswith("belong to the description.")
    assert bash.categories == ("Base", "Shells")
    make = ini().packages["make"]
    assert make.get("message") == 'make "Read this\nbefore you build"'


def test_sections_and_fields() -> None:
    cyg = ini().packages["cygwin"]
    assert [v.kind for v in cyg.versions] == ["curr", "test"]
    assert cyg.current.version == "3.5.4-1"
    assert cyg.versions[1].version == "3.6.0-0.1"
    bash = ini().packages["bash"]
    assert [v.kind for v in bash.versions] == ["curr", "prev"]
    deps = setup_ini.dependencies(bash, "setup.ini")
    assert deps == (
        setup_ini.Dep("cygwin"),
        setup_ini.Dep("libreadline7", ">=", "8.0"),
        setup_ini.Dep("_windows", ">=", "6.1"),
    )
    # the old space-separated form
    nc = ini().packages["libncursesw10"]
    assert setup_ini.dependencies(nc, "x") == (setup_ini.Dep("cygwin"), setup_ini.Dep("terminfo"))
    assert setup_ini.provides(ini().packages["perl_base"], "x") == ("perl5_036",)
    inst = setup_ini.install(ini().packages["zlib0"], "x")
    assert inst.path == "x86_64/release/zlib/zlib0/zlib0-1.3.1-1.tar.xz"
    assert inst.size == 30000
    assert len(inst.sha512) == 128
    # fields kept but not used for resolution
    assert ini().packages["libintl8"].get("obsoletes") == "libintl7"
    assert ini().packages["openssh"].get("conflicts") == "ssh-other"


def test_closure_matches_hand_checked_expectation() -> None:
    got = closure.resolve(ini(), ["make", "openssh"])
    assert [p.name for p in got] == EXPECTED
    by_name = {p.name: p for p in got}
    assert by_name["cygwin"].version == "3.5.4-1"  # current, not [test]
    assert by_name["cygwin"].install.path.endswith("cygwin-3.5.4-1-x86_64.tar.xz")
    assert by_name["bash"].version == "5.2.21-1"  # current, not [prev]
    assert by_name["perl_base"].provides == ("perl5_036",)


def test_cycle_resolves() -> None:
    got = [p.name for p in closure.resolve(ini(), ["chain-b"])]
    assert {"chain-a", "chain-b", "chain-c", "zlib0"} <= set(got)


def test_requesting_a_virtual_name_picks_its_provider() -> None:
    got = [p.name for p in closure.resolve(ini(), ["perl5_036"])]
    assert "perl_base" in got


@pytest.mark.parametrize(
    ("request_", "field", "words"),
    [
        (["nosuch"], "cygwin package nosuch", "is not in setup.ini"),
        (["broken"], "cygwin package ghost", "needed by broken"),
        (["testonly"], "cygwin package testonly", "no install line"),
        (["needsnew"], "cygwin package needsnew", "bash (>= 9.0)"),
    ],
)
def test_closure_errors_name_the_package(request_: list[str], field: str, words: str) -> None:
    with pytest.raises(UserError) as exc:
        closure.resolve(ini(), request_)
    assert exc.value.field == field
    assert words in exc.value.problem


def test_version_compare() -> None:
    cmp = closure.compare_versions
    assert cmp("5.2.21-1", "5.2.9-1") == 1
    assert cmp("9.8p1-1", "9.8p2-1") == -1
    assert cmp("1.0-2", "1.0-10") == -1
    assert cmp("3.5.4-1", "3.5.4-1") == 0
    assert closure.satisfies("8.2-2", ">=", "8.0")
    assert not closure.satisfies("5.2.21-1", ">=", "9.0")
    assert closure.satisfies("1.40-1", "=", "1.40")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("@ a\nversion 1\n", "not a 'key: value' line"),
        ('@ a\nldesc: "never closed\n', "never closes"),
        ("[prev]\n", "before the first package"),
        ("@ a\nversion: 1\n@ a\nversion: 2\n", "appears twice"),
        ("@ a b\n", "not a package name"),
    ],
)
def test_parse_errors_give_the_line(text: str, words: str) -> None:
    with pytest.raises(UserError) as exc:
        setup_ini.parse(text, "my.ini")
    assert exc.value.field == "my.ini"
    assert "line " in exc.value.problem
    assert words in exc.value.problem


def test_bad_install_line() -> None:
    text = "@ a\nversion: 1-1\ninstall: ../../etc/passwd 1 " + "0" * 128 + "\n"
    with pytest.raises(UserError, match="not 'path size sha512'"):
        closure.resolve(setup_ini.parse(text), ["a"])


def test_lock_is_byte_identical_and_round_trips(tmp_path: Path) -> None:
    text = FIXTURE.read_text()
    a = lock.dumps(lock.make_lock(text, ["openssh", "make"], MIRROR))
    b = lock.dumps(lock.make_lock(text, ["make", "openssh", "make"], MIRROR))
    assert a == b
    back = lock.loads(a, "cygwin.lock.json")
    assert lock.dumps(back) == a
    assert back.names == EXPECTED
    assert (
        back.url(back.packages[0]) == MIRROR + "/x86_64/release/base-files/base-files-4.3-3.tar.xz"
    )
    assert '"format": 1' in a
    (tmp_path / "l.json").write_text(a)
    assert lock.read_lock(tmp_path / "l.json") == back


def test_trimmed_setup_ini_parses_back_to_the_same_closure() -> None:
    locked = lock.make_lock(FIXTURE.read_text(), ["make", "openssh"], MIRROR)
    trimmed = setup_ini.parse(locked.setup_ini(), "trimmed")
    assert sorted(trimmed.packages) == EXPECTED
    assert [p.name for p in closure.resolve(trimmed, ["make", "openssh"])] == EXPECTED
    assert trimmed.headers["setup-version"] == "2.932"
    assert "include-setup" not in trimmed.headers


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace('"format": 1', '"format": 7'),
        lambda s: s.replace("x86_64/release/zlib", "x86_64/release/../zlib"),
        lambda s: s.replace('"name": "zlib0"', '"name": "zlib0\\"; rm -rf /"'),
        lambda s: s.replace("https://mirror.example/cygwin", "https://x/'; evil"),
    ],
)
def test_lock_reader_rejects_tampering(edit: object) -> None:
    text = lock.dumps(lock.make_lock(FIXTURE.read_text(), ["make", "openssh"], MIRROR))
    bad = edit(text)  # type: ignore[operator]
    assert bad != text
    with pytest.raises(UserError, match="not a valid wingen Cygwin lock"):
        lock.loads(bad, "l.json")


def test_missing_lock_file_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(UserError) as exc:
        lock.read_lock(tmp_path / "nope.json")
    assert exc.value.field == "cygwin.lock_file"


def test_setups_strict_relations_and_set_aside_sections() -> None:
    """inilex.ll: `<<` and `>>` are `<` and `>`; `[exp]` is `[test]`; other `[word]` sections are
    set aside, never read as the current version."""
    text = (
        "release: cygwin\narch: x86_64\n\n@ a\nVersion: 2-1\n"
        "Depends2: b (<< 3), c (>> 1.0)\n[exp]\nversion: 3-1\n[foo.bar]\nversion: 9-9\n"
    )
    pkg = setup_ini.parse(text).packages["a"]
    assert [v.kind for v in pkg.versions] == ["curr", "test", "other"]
    assert pkg.current.version == "2-1"
    assert setup_ini.dependencies(pkg, "x") == (
        setup_ini.Dep("b", "<", "3"),
        setup_ini.Dep("c", ">", "1.0"),
    )


def test_base64url_sha512_is_read_as_hex() -> None:
    digest = bytes(range(192, 256))  # 6-bit groups of 62 and 63: base64url's `-` and `_`
    b64 = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert len(b64) == 86 and {"-", "_"} <= set(b64)
    assert setup_ini.sha512_hex(b64) == digest.hex()
