"""The media derivations built for real with nix-build (stand-in package set) and read back with
mtools and xorriso. Needs nix-build, mtools and xorriso (all on this machine)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wingen.cygwin import setup_ini
from wingen.loader import load_config
from wingen.render import runtime_files

from . import setup_local
from .helpers import PARTIAL_NAMES, TIME_MACHINE, render_files, render_partial
from .test_cli import wingen

pytestmark = pytest.mark.nix
HERE = Path(__file__).parent
NIX_OPTS = [
    "--option", "sandbox", "false", "--option", "build-users-group", "",
    "--option", "substituters", "",
]  # fmt: skip
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIwingenTestKeyOnly test@wingen\n"


def run(*argv: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{argv}: {proc.stderr[-3000:]}"
    return proc.stdout


def make_mirror(root: Path) -> str:
    """A tiny file:// mirror with real tarballs and a setup.ini that pins them."""
    pkgs = {
        "cygwin": ("Base", "bash"), "bash": ("Base", "cygwin"),
        "openssh": ("Net", "cygwin, cygrunsrv"), "cygrunsrv": ("Admin", "cygwin"),
        "make": ("Devel", "cygwin, libintl8"),
        "libintl8": ("Libs", "cygwin"), "unused": ("Devel", "cygwin"),
        "tar": ("Base", "cygwin, libintl8"),
    }  # fmt: skip
    blocks = ["release: cygwin", "arch: x86_64", "setup-timestamp: 1700000000",
              "setup-version: 2.932", ""]  # fmt: skip
    for name, (cat, deps) in pkgs.items():
        rel = f"x86_64/release/{name}/{name}-1.0-1.tar.xz"
        data = f"pretend tarball of {name}\n".encode() * 50
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        sha = hashlib.sha512(data).hexdigest()
        blocks += [f"@ {name}", f'sdesc: "{name}"', f"category: {cat}", "version: 1.0-1",
                   f"install: {rel} {len(data)} {sha}", f"depends2: {deps}", ""]  # fmt: skip
    (root / "x86_64" / "setup.ini").write_text("\n".join(blocks))
    return root.as_uri()


def add_tarballs_to_store(mirror: Path, scratch: Path) -> None:
    """Each tarball as the fixed-output path fetchurl would make (its store name, flat sha512)."""
    scratch.mkdir()
    for tarball in mirror.glob("*/release/*/*.tar.xz"):
        named = scratch / ("cygwin-" + tarball.name)  # media._store_name for these names
        named.write_bytes(tarball.read_bytes())
        run("nix-store", "--add-fixed", "sha512", str(named))


def try_build(workdir: Path, attr: str) -> subprocess.CompletedProcess[str]:
    """nix-build that may fail: its exit code and output, for the message a build stops with."""
    return subprocess.run(
        ["nix-build", *NIX_OPTS, "--no-out-link", "-A", attr, "default.nix"],
        cwd=workdir, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def build(workdir: Path, attr: str) -> Path:
    out = run("nix-build", *NIX_OPTS, "--no-out-link", "-A", attr, "default.nix", cwd=workdir)
    return Path(out.strip())


def rebuilds_identically(workdir: Path, attr: str) -> None:
    """nix-build --check builds again and fails if the output differs in any byte."""
    time.sleep(1.1)  # a timestamp leaking in would now differ
    run("nix-build", *NIX_OPTS, "--no-out-link", "--check", "-A", attr, "default.nix", cwd=workdir)


STANDIN = HERE.parents[1] / "nix" / "standin" / "default.nix"


def write_runtime(root: Path) -> None:
    """The runtime helper's files as the main expression's `runtime` holds them."""
    for rel, text in runtime_files().items():
        if not rel.startswith("runtime/"):
            continue
        path = root / rel.removeprefix("runtime/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def setup_project(
    tmp_path: Path, windows: str, mirror_dir: str = "mirror", mirror_url: str | None = None
) -> tuple[Path, dict[str, str]]:
    """A config with a locked closure from a file:// mirror, or from `mirror_url` with its tarballs
    added to the store beforehand (fetchurl then has nothing to fetch: this machine is offline)."""
    mirror = make_mirror(tmp_path / mirror_dir)
    if mirror_url is not None:
        mirror = mirror_url
        add_tarballs_to_store(tmp_path / mirror_dir, tmp_path / "prefetched")
    exe = tmp_path / "setup-x86_64.exe"
    exe.write_bytes(b"MZ pretend cygwin installer\n")
    exe_sha = hashlib.sha256(exe.read_bytes()).hexdigest()
    (tmp_path / "wingen.toml").write_text(
        f'name = "t"\n[windows]\n{windows}\n'
        f'[cygwin]\npackages = ["make"]\nmirror = "{mirror}"\n'
        f'setup = {{ url = "{exe.as_uri()}", sha256 = "{exe_sha}" }}\n'
    )
    r = wingen(
        "cygwin",
        "lock",
        "--setup-ini",
        str(tmp_path / mirror_dir / "x86_64/setup.ini"),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    cfg = load_config(tmp_path / "wingen.toml")
    files = render_files(cfg, tmp_path)
    partial = render_partial(cfg, tmp_path, files)
    (tmp_path / "key").mkdir()
    (tmp_path / "key" / "key.pub").write_text(PUBKEY)
    write_runtime(tmp_path / "runtime")
    # Only the partial's declared names are bound: any other name is an undefined variable.
    (tmp_path / "default.nix").write_text(
        f"let\n  inherit (import {STANDIN} {{ }}) " + " ".join(PARTIAL_NAMES) + ";\n"
        "  sshKey = ./key;\n  isoRuntime = ./runtime;\n"
        + partial
        + "in { inherit windowsIso windowsIsoNoPrompt windowsBootIso editionCheck answerFloppy\n"
        "  answerIso cygwinIso; }\n"
    )
    return tmp_path, files


UEFI = (
    'iso = { name = "wingen-test-win.iso", sha256 = "ISOHASH" }\n'
    'edition = "Windows 11 Pro"\nfirmware = "uefi"\nproduct_key = "generic"'
)


def test_answer_floppy_and_iso(tmp_path: Path) -> None:
    work, files = setup_project(tmp_path, UEFI.replace("ISOHASH", "1" * 64))
    xml = files["windows/autounattend.xml"]
    floppy = build(work, "answerFloppy")
    assert floppy.stat().st_size == 1440 * 1024
    listing = run("mdir", "-b", "-i", str(floppy), "::/")
    assert listing.split() == ["::/Autounattend.xml"]
    assert run("mtype", "-i", str(floppy), "::/Autounattend.xml") == xml
    assert "WINGEN" in run("mlabel", "-s", "-i", str(floppy), "::")
    iso = build(work, "answerIso")
    files_in = run("xorriso", "-indev", str(iso), "-find", "/", "-type", "f", "--")
    assert "'/Autounattend.xml'" in files_in
    run("xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/Autounattend.xml",
        str(tmp_path / "back.xml"))  # fmt: skip
    assert (tmp_path / "back.xml").read_text() == xml
    assert re.search(
        r"Volume Id\s*: WINGEN_ANSWER\n", run("xorriso", "-indev", str(iso), "-pvd_info")
    )
    rebuilds_identically(work, "answerFloppy")
    rebuilds_identically(work, "answerIso")


def test_winnt_sif_floppy_with_crlf(tmp_path: Path) -> None:
    work, files = setup_project(
        tmp_path,
        'iso = { name = "xp.iso", sha256 = "' + "1" * 64 + '" }\n'
        'edition = "Windows XP Professional"\nanswer_file = "winnt-sif"\n'
        'product_key = "BCDFG-HJKMP-QRTVW-XY234-6789B"',
        mirror_dir="circa/2016",  # a local copy of a Time Machine snapshot
    )
    floppy = build(work, "answerFloppy")
    assert run("mdir", "-b", "-i", str(floppy), "::/").split() == ["::/winnt.sif"]
    back = tmp_path / "winnt.sif"
    run("mcopy", "-n", "-i", str(floppy), "::/winnt.sif", str(back))
    data = back.read_bytes()
    # XP/2003 setup reads winnt.sif as DOS text: CRLF on every line, the text otherwise as rendered
    assert data.count(b"\r\n") == data.count(b"\n") > 10
    assert data.decode().replace("\r\n", "\n") == files["windows/winnt.sif"]


# media.SITE_DIR: the one folder of the ISO's local package dir, whatever the mirror
SITE = "/cygwin/mirror"
CLOSURE = ["bash", "cygrunsrv", "cygwin", "libintl8", "make", "openssh", "tar"]


JOLIET = ("-rockridge", "off", "-joliet", "on")


def joliet_files(iso: Path) -> list[str]:
    """The ISO's files as Windows sees them: its Joliet tree (xorriso shows Rock Ridge else)."""
    listing = run("xorriso", *JOLIET, "-indev", str(iso), "-find", "/", "-type", "f", "--")
    return sorted(line.strip("'") for line in listing.split())


def extractor(iso: Path, dest: Path) -> Callable[[str], bytes]:
    def extract(path: str) -> bytes:
        out = dest / path.lstrip("/").replace("/", "_")
        out.parent.mkdir(exist_ok=True)
        run("xorriso", *JOLIET, "-osirrox", "on", "-indev", str(iso), "-extract", path, str(out))
        return out.read_bytes()

    return extract


def setup_finds_the_closure(iso: Path, mirror: Path, scratch: Path) -> list[str]:
    """What setup.exe -L -l <CD>\\cygwin finds on the ISO (setup_local, after setup's source):
    exactly one setup.ini, listing the locked closure, and every tarball of it at the path setup
    looks in, each the mirror's bytes. The ISO's files are returned."""
    got = joliet_files(iso)
    keys = setup_local.mirror_keys(got, "/cygwin", "x86_64")
    assert len(keys) == 1, keys
    extract = extractor(iso, scratch)
    ini_path = [f for f in got if f.lower().endswith("/x86_64/setup.ini")]
    assert ini_path == [f"{SITE}/x86_64/setup.ini"]
    ini = setup_ini.parse(extract(ini_path[0]).decode(), "iso setup.ini")
    assert sorted(ini.packages) == CLOSURE
    for pkg in ini.packages.values():
        rel = setup_ini.install(pkg, "iso setup.ini").path
        path = setup_local.tarball_path("/cygwin", keys[0], rel)
        assert path in got
        assert extract(path) == (mirror / rel).read_bytes()
    return got


def test_cygwin_iso(tmp_path: Path) -> None:
    work, files = setup_project(tmp_path, UEFI.replace("ISOHASH", "1" * 64))
    iso = build(work, "cygwinIso")
    got = setup_finds_the_closure(iso, tmp_path / "mirror", tmp_path / "x")
    site = SITE
    want = sorted(
        [
            "/setup-x86_64.exe",
            f"{site}/x86_64/setup.ini",
            "/wingen/install.cmd",
            "/wingen/bootstrap.sh",
            "/wingen/authorized_keys",
            "/wingen/packages.txt",
        ]
        + [f"{site}/x86_64/release/{n}/{n}-1.0-1.tar.xz" for n in CLOSURE]
    )
    assert got == want
    extract = extractor(iso, tmp_path / "x")
    assert extract("/setup-x86_64.exe") == b"MZ pretend cygwin installer\n"
    assert extract("/wingen/packages.txt") == b"cygrunsrv,make,openssh,tar\r\n"
    assert extract("/wingen/authorized_keys").decode() == PUBKEY
    assert extract("/wingen/bootstrap.sh").decode() == files["windows/wingen/bootstrap.sh"]
    cmd = extract("/wingen/install.cmd")
    assert cmd.count(b"\r\n") == cmd.count(b"\n")  # CRLF throughout
    assert re.search(
        r"Volume Id\s*: WINGEN_CYGWIN\n", run("xorriso", "-indev", str(iso), "-pvd_info")
    )
    rebuilds_identically(work, "cygwinIso")


def test_cygwin_iso_from_a_time_machine_mirror(tmp_path: Path) -> None:
    """Windows 7 needs a Cygwin Time Machine mirror, whose URL is longer URL-encoded (109
    characters) than a Joliet name may be (103): the ISO still holds the folder setup reads."""
    work, files = setup_project(
        tmp_path,
        'iso = { name = "win7.iso", sha256 = "' + "1" * 64 + '" }\n'
        'edition = "Windows 7 Professional"',
        mirror_url=TIME_MACHINE,
    )
    assert "--allow-unsupported-windows" in files["windows/wingen/install.cmd"]
    nix = (work / "default.nix").read_text()
    assert f'url = "{TIME_MACHINE}/x86_64/release/make/make-1.0-1.tar.xz"' in nix
    iso = build(work, "cygwinIso")
    got = setup_finds_the_closure(iso, tmp_path / "mirror", tmp_path / "x")
    assert max(len(part) for f in got for part in f.split("/")) <= 103


def test_windows_iso_require_file(tmp_path: Path) -> None:
    tag = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]  # a name new to the store
    fake = tmp_path / f"wingen-test-win-{tag}.iso"
    fake.write_bytes(b"pretend windows " + str(tmp_path).encode())
    sha = hashlib.sha256(fake.read_bytes()).hexdigest()
    work, _ = setup_project(
        tmp_path, UEFI.replace("wingen-test-win.iso", fake.name).replace("ISOHASH", sha)
    )
    proc = try_build(work, "windowsIso")
    assert proc.returncode != 0
    assert f"nix-store --add-fixed sha256 /path/to/{fake.name}" in proc.stderr
    added = run("nix-store", "--add-fixed", "sha256", str(fake)).strip()
    assert build(work, "windowsIso") == Path(added)
