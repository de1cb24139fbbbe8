"""Shared helpers for the media tests: a Windows config and the rendered Windows files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wingen import render
from wingen.config import Config
from wingen.loader import parse_config
from wingen.media import check_files

ZERO = "0" * 64
# A Cygwin Time Machine snapshot: what old or 32-bit Windows guests must lock from (config.py).
TIME_MACHINE = (
    "http://ctm.crouchingtigerhiddenfruitbat.org/pub/cygwin/circa/64bit/2024/01/30/231215"
)
OLD_CYGWIN = {"mirror": TIME_MACHINE}
# The names nix/windows-media.nix declares it needs from the main expression's arguments.
PARTIAL_NAMES = (
    "runCommand", "writeText", "requireFile", "fetchurl", "dosfstools", "mtools", "xorriso",
    "python3", "wimlib",
)  # fmt: skip


SERVER_PASSWORD = "Wg-build-1"


def windows_cfg(windows: dict[str, Any] | None = None, **top: Any) -> Config:
    win = {"iso": {"name": "win.iso", "sha256": ZERO}, "edition": "Windows 11 Pro"}
    win.update(windows or {})
    if str(win.get("edition", "")).startswith("Windows Server") and "account" not in win:
        win["account"] = {"password": SERVER_PASSWORD}  # Server's policy refuses the default
    return parse_config({"name": "t", "windows": win, **top})


def render_files(cfg: Config, config_dir: Path = Path()) -> dict[str, str]:
    """The rendered windows/** files, checked like render.render() checks them."""
    env = render.environment()
    ctx = render.base_context(cfg, config_dir)
    files = {
        n.removesuffix(".j2"): env.get_template(n).render(ctx) for n in render.file_templates(cfg)
    }
    check_files(cfg, files)
    return files


def render_partial(cfg: Config, config_dir: Path, files: dict[str, str]) -> str:
    env = render.environment()
    ctx = render.base_context(cfg, config_dir)
    embed = render._embedder(files, False)
    return env.get_template("nix/windows-media.nix.j2").render(ctx, files=files, embed=embed)
