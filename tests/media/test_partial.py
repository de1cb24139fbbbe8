"""The Nix partial: only allowed nixpkgs names, and clear errors when its inputs are missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wingen.cygwin import lock
from wingen.errors import UserError
from wingen.nixnames import names_for

from .helpers import (
    PARTIAL_NAMES,
    TIME_MACHINE,
    ZERO,
    render_files,
    render_partial,
    windows_cfg,
)

FIXTURE = Path(__file__).parent / "fixtures" / "setup.ini"
SETUP = {"setup": {"url": "https://cygwin.com/setup-x86_64.exe", "sha256": ZERO}}


def write_lock(d: Path, packages: list[str], mirror: str = "https://m.example/cygwin") -> None:
    text = lock.dumps(lock.make_lock(FIXTURE.read_text(), packages, mirror))
    (d / "cygwin.lock.json").write_text(text)


def partial(d: Path, windows: dict[str, object] | None = None, **cygwin: object) -> str:
    cfg = windows_cfg(windows, cygwin=cygwin or SETUP)
    return render_partial(cfg, d, render_files(cfg, d))


def test_partial_uses_only_listed_nixpkgs_names(tmp_path: Path) -> None:
    write_lock(tmp_path, ["openssh", "make"])
    text = partial(tmp_path, {"virtio_iso": {"url": "https://x.example/virtio-win.iso",
                                             "sha256": ZERO}})  # fmt: skip
    # The nix tests bind only PARTIAL_NAMES (an unknown name fails there); all are allowed names.
    assert set(PARTIAL_NAMES) <= set(names_for("windows"))
    for name in PARTIAL_NAMES:
        assert re.search(rf"\b{name}\b", text), name
    assert "pkgs." not in text
    assert text.count('fetchurl { name = "cygwin-') == 16  # one per locked tarball
    assert 'hash = "sha512-' in text
    assert "builtins.fetchurl" not in text and "import (" not in text  # no IFD
    assert "nix-store --add-fixed sha256 /path/to/${name}" in text


def _unbuildable_cygwin_iso(text: str) -> str:
    """The message of the Cygwin ISO that says what it lacks, or fail."""
    found = re.search(
        r'message = "wingen cannot make the Cygwin ISO yet: ((?:[^"\\]|\\.)*)";', text
    )
    assert found, "a missing input still renders, as an ISO whose build says what to do"
    assert "exit 1" in text[found.end() :][:200]
    return found.group(1)


def test_missing_lock_names_the_field(tmp_path: Path) -> None:
    message = _unbuildable_cygwin_iso(partial(tmp_path))
    assert message.startswith("cygwin.lock_file: 'cygwin.lock.json' does not exist")
    assert "wingen cygwin lock --setup-ini" in message


def test_lock_without_a_configured_package(tmp_path: Path) -> None:
    write_lock(tmp_path, ["openssh"])
    with pytest.raises(UserError) as exc:
        partial(tmp_path, None, packages=["make"], **SETUP)
    assert exc.value.field == "cygwin.packages"
    assert "make" in exc.value.problem


def test_unpinned_setup_exe(tmp_path: Path) -> None:
    write_lock(tmp_path, ["openssh"])
    message = _unbuildable_cygwin_iso(partial(tmp_path, None, packages=[]))
    assert message.startswith("cygwin.setup: the Cygwin installer is not pinned")
    assert "wingen prefetch https://cygwin.com/setup-x86_64.exe" in message


def test_lock_for_the_wrong_architecture(tmp_path: Path) -> None:
    write_lock(tmp_path, ["openssh"])
    with pytest.raises(UserError, match="locked for x86_64, the guest is x86"):
        partial(tmp_path, {"architecture": "i686"}, mirror=TIME_MACHINE, **SETUP)


def test_a_mirror_of_any_length_gets_the_same_short_folder(tmp_path: Path) -> None:
    long = "https://m.example/" + "c" * 200  # URL-encoded, far past a Joliet name's 103
    write_lock(tmp_path, ["openssh"], long)
    text = partial(tmp_path)
    assert 'cygwinSite = "mirror";' in text
    assert f'url = "{long}/x86_64/release/openssh/' in text
