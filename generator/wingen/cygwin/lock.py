"""The Cygwin lock file: the resolved closure, each tarball pinned by path, size and sha512.

JSON with sorted keys and a fixed layout, so the same setup.ini and package list always give the
same bytes. It also carries what is needed to write a trimmed setup.ini for the offline ISO (only
the locked packages, current versions), so the rendered Nix needs neither the mirror's setup.ini
nor import-from-derivation.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import check_mirror
from ..errors import UserError
from ..files import read_text
from .closure import Locked, resolve
from .setup_ini import _DEP, _HEX512, _NAME, _PATH, _VERSION, Install, SetupIni, parse

FORMAT = 1
ARCH_DIRS = {"x86_64": "x86_64", "i686": "x86"}  # wingen architecture → Cygwin's arch name
_HEADER_VALUE = re.compile(r"[A-Za-z0-9._:<> +-]*")
_HEADERS = ("release", "arch", "setup-timestamp", "setup-minimum-version", "setup-version")


@dataclass(frozen=True)
class Lock:
    arch: str  # Cygwin's name: x86_64 or x86
    mirror: str
    setup_ini_sha512: str
    headers: dict[str, str]
    requested: tuple[str, ...]
    packages: tuple[Locked, ...]

    def url(self, pkg: Locked) -> str:
        return self.mirror.rstrip("/") + "/" + pkg.install.path

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.packages]

    def setup_ini(self) -> str:
        """A setup.ini listing only the locked packages, for setup.exe's local install mode."""
        out = [
            "# Written by wingen from its Cygwin lock: only the locked packages.",
            *(f"{k}: {self.headers[k]}" for k in _HEADERS if k in self.headers),
        ]
        for p in self.packages:
            out += ["", f"@ {p.name}", f'sdesc: "{p.name}"']
            if p.categories:
                out.append("category: " + " ".join(p.categories))
            names = sorted({_DEP.fullmatch(d).group(1) for d in p.depends})  # type: ignore[union-attr]
            if names:
                out.append("requires: " + " ".join(names))
            out.append(f"version: {p.version}")
            out.append(f"install: {p.install.path} {p.install.size} {p.install.sha512}")
            if p.depends:
                out.append("depends2: " + ", ".join(p.depends))
            if p.provides:
                out.append("provides: " + ", ".join(p.provides))
        return "\n".join(out) + "\n"


def make_lock(text: str, requested: list[str], mirror: str, source: str = "setup.ini") -> Lock:
    """The lock for `requested` from setup.ini's text; `mirror` is checked already (MirrorUrl)."""
    ini: SetupIni = parse(text, source)
    arch = ini.arch or "x86_64"
    headers = {k: ini.headers[k] for k in _HEADERS if k in ini.headers}
    for k, v in headers.items():
        if not _HEADER_VALUE.fullmatch(v):
            raise UserError(source, f"header {k}: {v!r} is unusual", "pass an unedited setup.ini")
    return Lock(
        arch=arch,
        mirror=mirror,
        setup_ini_sha512=hashlib.sha512(text.encode("utf-8")).hexdigest(),
        headers=headers,
        requested=tuple(sorted(set(requested))),
        packages=tuple(resolve(ini, sorted(set(requested)))),
    )


def dumps(lock: Lock) -> str:
    data = {
        "format": FORMAT,
        "comment": "Written by `wingen cygwin lock`; do not edit.",
        "arch": lock.arch,
        "mirror": lock.mirror,
        "setup_ini": {"sha512": lock.setup_ini_sha512, "headers": lock.headers},
        "requested": list(lock.requested),
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "category": list(p.categories),
                "depends": list(p.depends),
                "provides": list(p.provides),
                "path": p.install.path,
                "size": p.install.size,
                "sha512": p.install.sha512,
            }
            for p in lock.packages
        ],
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def loads(text: str, where: str) -> Lock:
    """Read a lock back, checking every value (they reach Nix, setup.ini and shell)."""
    fix = "re-create it with `wingen cygwin lock`"
    try:
        data: Any = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {FORMAT}")
        mirror = check_mirror(str(data["mirror"]))  # raises a ValueError
        arch = str(data["arch"])
        if arch not in ARCH_DIRS.values():
            raise ValueError(f"arch {arch!r}")
        headers = {str(k): str(v) for k, v in data["setup_ini"]["headers"].items()}
        if any(k not in _HEADERS or not _HEADER_VALUE.fullmatch(v) for k, v in headers.items()):
            raise ValueError("bad setup.ini headers")
        packages = []
        for p in data["packages"]:
            item = Locked(
                name=_check(_NAME, p["name"]),
                version=_check(_VERSION, p["version"]),
                categories=tuple(_check(_NAME, c) for c in p["category"]),
                depends=tuple(_check(_DEP, d) for d in p["depends"]),
                provides=tuple(_check(_NAME, d) for d in p["provides"]),
                install=Install(
                    _check(_PATH, p["path"]), int(p["size"]), _check(_HEX512, p["sha512"])
                ),
            )
            if ".." in item.install.path.split("/"):
                raise ValueError(f"path {item.install.path!r}")
            packages.append(item)
        return Lock(
            arch=arch,
            mirror=mirror,
            setup_ini_sha512=_check(_HEX512, data["setup_ini"]["sha512"]),
            headers=headers,
            requested=tuple(_check(_NAME, r) for r in data["requested"]),
            packages=tuple(packages),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(where, f"not a valid wingen Cygwin lock: {exc}", fix) from None


def _check(pattern: re.Pattern[str], value: Any) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"unexpected value {value!r}")
    return value


def read_lock(path: Path) -> Lock:
    fix = "run `wingen cygwin lock --setup-ini setup.ini` next to the config"
    return loads(read_text(path, fix, "cygwin.lock_file"), str(path))
