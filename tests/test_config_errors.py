"""Every class of bad input ends in one line naming the field, exit code 2, and no output file."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import ROOT, assert_render_refuses, wingen
from wingen.winpolicy import complexity_problem

WINDOWS = (ROOT / "examples" / "wingen.toml").read_text()


def _replace(old: str, new: str) -> str:
    assert old in WINDOWS, old
    return WINDOWS.replace(old, new, 1)


CASES = {
    "bad MAC": (
        _replace('guest_mac = "52:54:00:12:01:01"', 'guest_mac = "52:54:00:12:01"'),
        "network.guest_mac",
    ),
    "multicast MAC": (
        _replace('guest_mac = "52:54:00:12:01:01"', 'guest_mac = "01:00:5e:00:00:01"'),
        "network.guest_mac",
    ),
    "duplicate MAC": (
        _replace('controller_mac = "52:54:00:12:01:02"', 'controller_mac = "52:54:00:12:01:01"'),
        "network.controller_mac",
    ),
    "IP outside the subnet": (
        _replace('guest_ip = "192.168.0.1"', 'guest_ip = "10.1.2.3"'),
        "network.guest_ip",
    ),
    "broadcast IP": (
        _replace('controller_ip = "192.168.0.2"', 'controller_ip = "192.168.0.255"'),
        "network.controller_ip",
    ),
    "duplicate IP": (
        _replace('controller_ip = "192.168.0.2"', 'controller_ip = "192.168.0.1"'),
        "network.controller_ip",
    ),
    "bad key": (
        _replace('product_key = "generic"', 'product_key = "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"'),
        "windows.product_key",
    ),
    "generic key for an edition without one": (
        _replace('edition = "Windows 11 Pro"', 'edition = "Windows 11 Home"'),
        "windows.product_key",
    ),
    "unknown edition": (
        _replace('edition = "Windows 11 Pro"', 'edition = "Windows 11 Professional Plus"'),
        "windows.edition",
    ),
    "unknown field": (
        _replace("cpus = 2", "cpus = 2\ncpu_count = 4"),
        "vm.cpu_count",
    ),
    "clashing qemu arg": (
        _replace("extra_qemu_args = []", 'extra_qemu_args = ["-usb", "-m", "8G"]'),
        "vm.extra_qemu_args",
    ),
    "missing ISO hash": (
        _replace(', sha256 = "' + "0" * 64 + '"', ""),
        "windows.iso.sha256",
    ),
    "malformed ISO hash": (
        _replace('sha256 = "' + "0" * 64 + '"', 'sha256 = "abc"'),
        "windows.iso.sha256",
    ),
    "XP media with UEFI": (
        _replace('edition = "Windows 11 Pro"', 'edition = "Windows XP Professional"')
        .replace('answer_file = "autounattend"', 'answer_file = "winnt-sif"')
        .replace('product_key = "generic"', 'product_key = "none"'),
        "windows.firmware",
    ),
    "wrong type": (_replace("memory_mib = 4096", 'memory_mib = "lots"'), "vm.memory_mib"),
    "empty lock file": (
        _replace('lock_file = "cygwin.lock.json"', 'lock_file = ""'),
        "cygwin.lock_file",
    ),
    "unquoted date": (_replace('rtc_base = "2025-01-01"', "rtc_base = 2025-01-01"), "vm.rtc_base"),
    "a month 13": (_replace('rtc_base = "2025-01-01"', 'rtc_base = "2010-13-01"'), "vm.rtc_base"),
    "a February 30": (
        _replace('rtc_base = "2025-01-01"', 'rtc_base = "2024-02-30T00:00:00"'),
        "vm.rtc_base",
    ),
    "Server with the default password": (
        _replace('edition = "Windows 11 Pro"', 'edition = "Windows Server 2025 SERVERDATACENTER"'),
        "windows.account.password",
    ),
    "memory below the minimum": (_replace("memory_mib = 4096", "memory_mib = 64"), "vm.memory_mib"),
    "unknown acceleration": (
        _replace('acceleration = "auto"', 'acceleration = "hvf"'),
        "vm.acceleration",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_names_the_field(name: str, tmp_path: Path) -> None:
    text, field = CASES[name]
    assert_render_refuses(text, field, tmp_path)


def test_unreadable_config(tmp_path: Path) -> None:
    config = tmp_path / "wingen.toml"
    config.write_text(WINDOWS)
    config.chmod(0)
    proc = wingen("check", "-c", str(config))
    if proc.returncode == 0:  # root reads anything; a directory is unreadable as a file for all
        config.chmod(0o644)
        config.unlink()
        config.mkdir()
        proc = wingen("check", "-c", str(config))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {config}: cannot be read"), proc.stderr


def test_missing_config(tmp_path: Path) -> None:
    proc = wingen("check", "-c", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {tmp_path / 'nope.toml'}: no such file")


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "wingen.toml"
    config.write_text(_replace("cpus = 2", "cpus = = 2"))
    proc = wingen("check", "-c", str(config))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {config}: not valid TOML"), proc.stderr
    assert "line" in proc.stderr


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    proc = wingen("-v", "check", "-c", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


def test_custom_key_warns_about_the_store(tmp_path: Path) -> None:
    config = tmp_path / "wingen.toml"
    config.write_text(
        _replace('product_key = "generic"', 'product_key = "W269N-WFGWX-YVC9B-4J6C9-T83GX"')
    )
    proc = wingen("check", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "warning: windows.product_key" in proc.stderr
    assert "world-readable" in proc.stderr


@pytest.mark.parametrize(
    ("password", "refused"),
    [("wingen", True), ("Wg-build-1", False), ("Wingen-2024", True), ("Ab1-", True),
     ("abcdefgh12", True), ("abcdef1!", False), ("Pässwort1", False)],
)  # fmt: skip
def test_windows_password_complexity(password: str, refused: bool) -> None:
    assert (complexity_problem(password, "wingen") is not None) == refused
