"""`wingen cygwin lock` and `wingen prefetch` through the real CLI (exit codes, files, Nix)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from wingen.loader import load_config

from .helpers import TIME_MACHINE

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "setup.ini"
NIX_ENV = {
    "NIX_CONFIG": "sandbox = false\nbuild-users-group =\nsubstituters =\n",
}


def wingen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "generator"), **NIX_ENV}
    return subprocess.run(
        [sys.executable, "-m", "wingen.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def example(tmp_path: Path, packages: str = '["make"]') -> Path:
    text = (ROOT / "templates" / "init" / "windows.toml").read_text()
    text = text.replace('packages = ["make", "gcc-core"]', f"packages = {packages}")
    cfg = tmp_path / "wingen.toml"
    cfg.write_text(text)
    return cfg


def test_lock_to_config_path_is_byte_identical(tmp_path: Path) -> None:
    example(tmp_path)
    first = wingen("cygwin", "lock", "--setup-ini", str(FIXTURE), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lock = tmp_path / "cygwin.lock.json"
    a = lock.read_bytes()
    second = wingen("cygwin", "lock", "--setup-ini", str(FIXTURE), cwd=tmp_path)
    assert second.returncode == 0
    assert lock.read_bytes() == a
    assert "16 packages" in first.stderr
    assert b'"requested": [\n    "cygrunsrv",\n    "make",\n    "openssh",\n    "tar"\n  ]' in a


def test_lock_to_output_without_config(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "l.json"
    r = wingen(
        "cygwin", "lock", "--setup-ini", str(FIXTURE), "--mirror", "https://m.example/c",
        "-o", str(out), "chain-a", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert '"mirror": "https://m.example/c"' in out.read_text()
    assert '"name": "chain-c"' in out.read_text()


def test_lock_unknown_package_exits_2_naming_it(tmp_path: Path) -> None:
    r = wingen(
        "cygwin", "lock", "--setup-ini", str(FIXTURE), "-o", "l.json", "nosuch", cwd=tmp_path
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: cygwin package nosuch: is not in")
    assert not (tmp_path / "l.json").exists()


def test_lock_missing_setup_ini_exits_2(tmp_path: Path) -> None:
    r = wingen("cygwin", "lock", "--setup-ini", "nope.ini", "-o", "l.json", cwd=tmp_path)
    assert r.returncode == 2
    assert "error: nope.ini: no such file" in r.stderr


def nix_hash(path: Path) -> str:
    return subprocess.run(
        ["nix-hash", "--type", "sha256", "--flat", "--base32", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@pytest.mark.nix
def test_prefetch_local_file_and_file_url(tmp_path: Path) -> None:
    iso = tmp_path / "Win11_test.iso"
    iso.write_bytes(b"not really an ISO\n" * 1000)
    want = nix_hash(iso)
    r = wingen("prefetch", str(iso), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Win11_test.iso {want}\n"
    assert "prefetching" in r.stderr
    assert "added to the store as /nix/store/" in r.stderr
    r = wingen("prefetch", iso.as_uri(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Win11_test.iso {want}\n"


def test_prefetch_missing_path_exits_2_naming_it(tmp_path: Path) -> None:
    r = wingen("prefetch", "no/such/Win.iso", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().endswith(
        "error: no/such/Win.iso: no such file (give the path of the ISO or installer, or its URL)"
    )


@pytest.mark.nix
def test_prefetch_write_keeps_comments(tmp_path: Path) -> None:
    cfg = example(tmp_path)
    before = cfg.read_text()
    iso = tmp_path / "MyWin.iso"
    iso.write_bytes(b"x" * 4096)
    r = wingen("prefetch", str(iso), "--write", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    after = cfg.read_text()
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments
    assert all(c in after.splitlines() for c in comments)
    assert "# Your own install ISO, pinned by hash." in after
    data = tomllib.loads(after)
    assert data["windows"]["iso"] == {"name": "MyWin.iso", "sha256": nix_hash(iso)}
    # the rest of the file is unchanged
    assert len(after.splitlines()) == len(before.splitlines())
    setup = tmp_path / "setup-x86_64.exe"
    setup.write_bytes(b"MZ" + b"\0" * 100)
    r = wingen("prefetch", setup.as_uri(), "--write", "--field", "cygwin.setup", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    loaded = load_config(cfg)
    assert loaded.cygwin.setup is not None
    assert loaded.cygwin.setup.url == setup.as_uri()
    assert loaded.cygwin.setup.sha256 == nix_hash(setup)


def test_prefetch_bad_field_exits_2(tmp_path: Path) -> None:
    r = wingen("prefetch", "x.iso", "--write", "--field", "vm.memory_mib", cwd=tmp_path)
    assert r.returncode == 2
    assert "error: --field:" in r.stderr


@pytest.mark.parametrize("compress", ["xz", "bz2"])
def test_lock_reads_compressed_setup_ini(tmp_path: Path, compress: str) -> None:
    import bz2
    import lzma

    data = FIXTURE.read_bytes()
    packed = lzma.compress(data) if compress == "xz" else bz2.compress(data)
    (tmp_path / f"setup.{compress}").write_bytes(packed)
    r = wingen("cygwin", "lock", "--setup-ini", f"setup.{compress}", "-o", "a.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = wingen("cygwin", "lock", "--setup-ini", str(FIXTURE), "-o", "b.json", cwd=tmp_path)
    a, b = (tmp_path / "a.json").read_text(), (tmp_path / "b.json").read_text()
    assert a == b  # same closure and the same setup.ini hash (of the uncompressed text)


def test_prefetch_name_nix_cannot_store(tmp_path: Path) -> None:
    (tmp_path / "Win 11.iso").write_bytes(b"x")
    r = wingen("prefetch", "Win 11.iso", cwd=tmp_path)
    assert r.returncode == 2
    assert "error: Win 11.iso: 'Win 11.iso' cannot be a Nix store name" in r.stderr


def test_time_machine_mirror_checks_locks_and_renders(tmp_path: Path) -> None:
    """Windows 7 must lock from a Cygwin Time Machine snapshot, whose URL-encoded name (109
    characters) no Joliet folder can take: check, lock and render all take it alike."""
    text = example(tmp_path).read_text()
    text = text.replace('"Windows 11 Pro"', '"Windows 7 Professional"')
    text = text.replace('firmware = "uefi"', 'firmware = "bios"')
    text = text.replace('product_key = "generic"', 'product_key = "none"')
    setup = f'setup = {{ url = "https://cygwin.com/setup-x86_64.exe", sha256 = "{"1" * 64}" }}'
    text = text.replace(
        '"https://mirrors.kernel.org/sourceware/cygwin"', f'"{TIME_MACHINE}"\n{setup}'
    )
    (tmp_path / "wingen.toml").write_text(text)
    for argv in (["check"], ["cygwin", "lock", "--setup-ini", str(FIXTURE)], ["render"]):
        r = wingen(*argv, cwd=tmp_path)
        assert r.returncode == 0, (argv, r.stderr)
    assert 'cygwinSite = "mirror";' in r.stdout
    assert f'url = "{TIME_MACHINE}/x86_64/release/make/' in r.stdout


def setups_other_spellings(text: str) -> str:
    """The fixture as older setup.ini files spell it, every form cygwin-setup's inilex.ll takes:
    capitalised keys, `Filename:`/`Section:`, `depends:`, `[exp]`, an unknown section, and each
    SHA-512 as base64url."""
    out = []
    for n, line in enumerate(text.splitlines()):
        key, sep, value = line.partition(": ")
        if key == "install":
            path, size, digest = value.split()
            b64 = base64.urlsafe_b64encode(bytes.fromhex(digest)).decode().rstrip("=")
            line = f"Filename: {path} {size} {b64}"
        elif sep and key in ("version", "obsoletes", "provides", "conflicts", "build-depends"):
            line = key[0].upper() + key[1:] + ": " + value
        elif key == "depends2":
            line = ("Depends2: " if n % 2 else "depends: ") + value
        elif key == "category":
            line = "Section: " + value
        elif line == "[test]":
            line = "[exp]"
        elif line == "[prev]":
            line = "[other]\nversion: 0.0-0\ndepends2: nosuch-package\n[prev]"
        out.append(line)
    return "\n".join(out) + "\n"


def test_lock_reads_setups_other_spellings_to_the_same_closure(tmp_path: Path) -> None:
    other = tmp_path / "other.ini"
    other.write_text(setups_other_spellings(FIXTURE.read_text()))
    assert "Depends2:" in other.read_text() and "depends:" in other.read_text()
    args = ("--mirror", "https://m.example/c", "make", "openssh")
    a = wingen("cygwin", "lock", "--setup-ini", str(FIXTURE), "-o", "a.json", *args, cwd=tmp_path)
    b = wingen("cygwin", "lock", "--setup-ini", str(other), "-o", "b.json", *args, cwd=tmp_path)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    locks = [json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab"]
    for lock in locks:  # the hash of the setup.ini read differs, as the files do
        assert len(lock["setup_ini"].pop("sha512")) == 128
    assert locks[1] == locks[0]
    assert len(locks[0]["packages"]) == 16


def test_lock_refuses_an_md5_only_install_line(tmp_path: Path) -> None:
    text = FIXTURE.read_text().replace(
        "zlib0-1.3.1-1.tar.xz 30000 "
        + FIXTURE.read_text().split("zlib0-1.3.1-1.tar.xz 30000 ")[1][:128],
        "zlib0-1.3.1-1.tar.xz 30000 " + "0123456789abcdef" * 2,
    )
    (tmp_path / "md5.ini").write_text(text)
    r = wingen("cygwin", "lock", "--setup-ini", "md5.ini", "-o", "l.json", "openssh", cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "zlib0" in r.stderr and "only an MD5" in r.stderr and "SHA-512" in r.stderr
    assert not (tmp_path / "l.json").exists()
