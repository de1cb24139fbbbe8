"""Template context for the Windows install media (render.base_context adds it for Windows guests).

- `win`: facts the answer files and scripts need (answer/facts.py);
- `cygwin`: the Cygwin lock and what the Nix partial builds from it, read only when a template uses
  it (so a missing lock file is an error of the render that needs it, naming cygwin.lock_file).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .answer.facts import WinFacts
from .answer.schema import check_autounattend
from .config import Config, Media
from .errors import UserError

if TYPE_CHECKING:
    from .cygwin.lock import Lock


# The folder in setup.exe's local package dir (`-L -l <CD>\cygwin`) that holds `<arch>/setup.ini`
# and the tarballs. Any name that setup's URL escaping leaves unchanged works, so one short fixed
# name serves every mirror, however long its URL (a Time Machine one, URL-encoded as setup names
# the folders it downloads to, is 109 characters: past Joliet's 103). cygwin-apps/setup, the same
# from release_2.874 (the XP-era setup) to release_2.936 (lines of 2.936, 16a520f):
# - fromcwd.cc:111-122 do_from_local_dir: finds any <CD>\cygwin\<name>\<arch>\setup.ini;
# - ini.cc:193-196 do_local_ini: the packages' mirror key is rfc1738_unescape(<name>);
# - download.cc:130-134 check_for_cached: a tarball is looked for at
#   <CD>\cygwin\<rfc1738_escape_part(key)>\<its setup.ini install: path>, i.e. <name> again.
SITE_DIR = "mirror"


class CygwinMedia:
    def __init__(self, cfg: Config, config_dir: Path) -> None:
        self._cfg = cfg
        self._path = config_dir / cfg.cygwin.lock_file

    @cached_property
    def lock(self) -> Lock:
        if not self._path.is_file():
            raise UserError(
                "cygwin.lock_file",
                f"{self._cfg.cygwin.lock_file!r} does not exist beside the config",
                "run `wingen cygwin lock --setup-ini setup.ini PACKAGE…` next to the config",
            )
        from .cygwin.lock import ARCH_DIRS, read_lock  # only when a lock is there to read

        lock = read_lock(self._path)
        assert self._cfg.windows is not None
        want_arch = ARCH_DIRS[self._cfg.windows.architecture]
        if lock.arch != want_arch:
            raise UserError(
                "cygwin.lock_file",
                f"{str(self._path)!r} was locked for {lock.arch}, the guest is {want_arch}",
                f"lock again with the {want_arch} setup.ini",
            )
        missing = sorted(set(self._cfg.cygwin.all_packages) - set(lock.requested))
        if missing:
            raise UserError(
                "cygwin.packages",
                f"{', '.join(missing)} not in the lock {str(self._path)!r}",
                "run `wingen cygwin lock --setup-ini setup.ini` again",
            )
        return lock

    @property
    def missing(self) -> str | None:
        """What keeps the Cygwin ISO from being made (no lock file yet, no pinned installer),
        as `field: problem (fix)`; None when it can be. The rendered Nix then still evaluates,
        and building the ISO stops with this message, as requireFile does for the Windows ISO."""
        if self._path.is_file() and self._cfg.cygwin.setup is not None:
            return None
        try:
            self.setup  # noqa: B018 -- raises what is missing (other lock errors propagate)
        except UserError as exc:
            if exc.field in ("cygwin.lock_file", "cygwin.setup"):
                return str(exc)
            raise
        return None

    @property
    def setup(self) -> Media:
        """The pinned installer; reading it also checks the lock."""
        arch = self.lock.arch
        if self._cfg.cygwin.setup is None:
            exe = "setup-x86_64.exe" if arch == "x86_64" else "setup-x86.exe"
            raise UserError(
                "cygwin.setup",
                "the Cygwin installer is not pinned",
                f'add setup = {{ url = "https://cygwin.com/{exe}", sha256 = "…" }} under [cygwin]; '
                f"`wingen prefetch https://cygwin.com/{exe} --write --field cygwin.setup` does it",
            )
        return self._cfg.cygwin.setup

    @property
    def site_dir(self) -> str:
        """The ISO folder holding `<arch>/setup.ini` and the tarballs (see SITE_DIR)."""
        return SITE_DIR

    @property
    def setup_ini(self) -> str:
        return self.lock.setup_ini()

    @property
    def packages_csv(self) -> str:
        return ",".join(self.lock.requested)

    @property
    def tarballs(self) -> list[dict[str, Any]]:
        return [
            {"name": p.name, "url": self.lock.url(p), "sha512": p.install.sha512,
             "hash": "sha512-" + base64.b64encode(bytes.fromhex(p.install.sha512)).decode(),
             "path": p.install.path, "store_name": _store_name(p.install.path)}
            for p in self.lock.packages
        ]  # fmt: skip


def _store_name(path: str) -> str:
    """A Nix store name for a tarball (store names allow fewer characters than file names)."""
    return "cygwin-" + re.sub(r"[^A-Za-z0-9+._?=-]", "_", path.rsplit("/", 1)[-1])


def media_context(cfg: Config, config_dir: Path) -> dict[str, Any]:
    if cfg.windows is None:
        return {}
    return {"win": WinFacts.of(cfg), "cygwin": CygwinMedia(cfg, config_dir)}


def cygwin_missing(cfg: Config, config_dir: Path) -> str | None:
    """What the Cygwin ISO still lacks for this config (see CygwinMedia.missing)."""
    return CygwinMedia(cfg, config_dir).missing if cfg.windows is not None else None


def check_files(cfg: Config, files: Mapping[str, str]) -> None:
    """Structural checks of rendered Windows files (a failure is a wingen bug)."""
    win = cfg.windows
    if win is None or win.answer_file != "autounattend":
        return
    edition = win.known_edition
    check_autounattend(
        files["windows/autounattend.xml"],
        win.architecture,
        modern=WinFacts.of(cfg).modern,
        server=edition is not None and edition.server,
        windows11=edition is not None and edition.windows11,
    )
