"""The controller's shares come from one list (wingen/shares.py): no template spells them out,
and each guest's rendered scripts map exactly those; unused Nix bindings stay gone."""

from __future__ import annotations

import tomllib
from pathlib import Path

from helpers import ROOT, windows_example
from wingen.loader import parse_config
from wingen.render import render
from wingen.shares import CONTROLLER_SHARES, DRIVE_LETTERS, SHARES

TEMPLATES = ROOT / "templates"


def test_no_template_spells_a_share_out() -> None:
    for path in TEMPLATES.rglob("*.j2"):
        text = path.read_text()
        assert "nixstore" not in text, path
        assert '"S:"' not in text and '"X:"' not in text, path


def test_rendered_scripts_map_every_share(tmp_path: Path) -> None:
    linux = parse_config(tomllib.loads((ROOT / "examples" / "linux.toml").read_text()))
    files = render(linux, tmp_path).files
    windows = render(parse_config(tomllib.loads(windows_example(tmp_path).read_text())), tmp_path)
    controller = files["scripts/controller-init.sh"]
    # The controller serves every share, each from where it mounts the host's 9p tag.
    assert sorted(c[0] for c in CONTROLLER_SHARES) == sorted(name for name, _ in SHARES)
    # The store is served from /nix/store itself (absolute store symlinks resolve on the server).
    assert dict((c[0], c[2]) for c in CONTROLLER_SHARES) == dict(SHARES)
    for name, tag, path, _, writable in CONTROLLER_SHARES:
        # Issue 19: only xchg is writable, at the controller's 9p mount and at Samba.
        assert f"share {name} {path} {'no' if writable else 'yes'}\n" in controller
        assert f" {tag} {path} || return 1" in controller and f"umount -l {path}" in controller
        assert (f',ro" {tag} ' in controller) is not writable
    assert [c[0] for c in CONTROLLER_SHARES if c[4]] == ["xchg"]
    for name, mount in SHARES:
        # The Linux guest's store goes under an overlay (map-shares.sh's `store`).
        linux = f"store {name}" if mount == "/nix/store" else f"map {name} {mount}"
        assert linux in files["linux/map-shares.sh"]
        assert f"map {name} {DRIVE_LETTERS[name]} {mount}" in windows.files["windows/map-shares.sh"]


def test_unused_nix_bindings_are_gone() -> None:
    text = "".join(p.read_text() for p in (TEMPLATES / "nix").glob("*.j2"))
    for name in ("pkgs = {", "sshPublicKey", "answerMedia"):
        assert name not in text
