"""The package closure setup.exe will want: requested packages plus category Base, transitively.

Only the current version of each package counts (never `[prev]`/`[test]`), as setup picks it by
default. Unlike the seed's mkclosure.py, Base packages' own dependencies are followed too (they are
not all in Base). Dependency cycles are normal in real setup.ini files and simply resolve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError
from .setup_ini import (
    PSEUDO_PACKAGES,
    Dep,
    Install,
    Package,
    SetupIni,
    dependencies,
    install,
    parse_deps,
    provides,
)

_FIX_UNKNOWN = "check the spelling against the setup.ini, or lock with a newer setup.ini"


@dataclass(frozen=True)
class Locked:
    """One package of the closure with what the lock file and the trimmed setup.ini need."""

    name: str
    version: str
    categories: tuple[str, ...]
    depends: tuple[str, ...]  # as written in depends2 (with relations), or the requires names
    provides: tuple[str, ...]
    install: Install


def _segments(text: str) -> list[str]:
    return re.findall(r"\d+|[A-Za-z]+", text)


def _cmp_part(a: str, b: str) -> int:
    """rpm's segment comparison, which setup.exe's version ordering follows."""
    sa, sb = _segments(a), _segments(b)
    for x, y in zip(sa, sb, strict=False):
        if x.isdigit() and y.isdigit():
            c = (int(x) > int(y)) - (int(x) < int(y))
        elif x.isdigit() != y.isdigit():
            c = 1 if x.isdigit() else -1  # a number is newer than letters
        else:
            c = (x > y) - (x < y)
        if c:
            return c
    return (len(sa) > len(sb)) - (len(sa) < len(sb))


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1, comparing Cygwin versions `V-R` (the release only breaks ties)."""
    va, _, ra = a.rpartition("-") if "-" in a else (a, "", "")
    vb, _, rb = b.rpartition("-") if "-" in b else (b, "", "")
    return _cmp_part(va, vb) or _cmp_part(ra, rb)


def satisfies(version: str, op: str, want: str) -> bool:
    c = compare_versions(version, want) if "-" in want else _cmp_part(version.split("-")[0], want)
    return {"<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">": c > 0}[op]


def resolve(ini: SetupIni, requested: list[str]) -> list[Locked]:
    """The closure of `requested` plus category Base, sorted by name."""
    src = ini.source
    providers: dict[str, list[str]] = {}
    for pkg in ini.packages.values():
        for virtual in provides(pkg, src):
            providers.setdefault(virtual, []).append(pkg.name)

    def lookup(name: str, wanted_by: str | None) -> Package | None:
        if name in PSEUDO_PACKAGES:
            return None
        pkg = ini.packages.get(name)
        if pkg is not None:
            return pkg
        if name in providers:
            # Several providers: prefer one already chosen, else the first by name (stable).
            chosen = sorted(providers[name], key=lambda p: (p not in done, p))[0]
            return ini.packages[chosen]
        by = f" (needed by {wanted_by})" if wanted_by else ""
        raise UserError(f"cygwin package {name}", f"is not in {src}{by}", _FIX_UNKNOWN)

    done: dict[str, Locked] = {}
    base = sorted(p.name for p in ini.packages.values() if "Base" in p.categories)
    stack: list[tuple[str, str | None]] = [(n, None) for n in reversed([*requested, *base])]
    while stack:
        name, wanted_by = stack.pop()
        found = lookup(name, wanted_by)
        if found is None or found.name in done:
            continue
        pkg = found
        deps = dependencies(pkg, src)
        tarball = install(pkg, src)
        version = pkg.current.version
        if version is None:
            raise UserError(
                f"cygwin package {pkg.name}", f"has no version line ({src})", _FIX_UNKNOWN
            )
        done[pkg.name] = Locked(
            name=pkg.name,
            version=version,
            categories=pkg.categories,
            depends=tuple(str(d) for d in deps),
            provides=provides(pkg, src),
            install=tarball,
        )
        for dep in reversed(deps):
            stack.append((dep.name, pkg.name))
    for item in done.values():
        _check_relations(ini, item, done)
    return [done[n] for n in sorted(done)]


def _check_relations(ini: SetupIni, item: Locked, done: dict[str, Locked]) -> None:
    """Version relations between closure members must hold for their current versions."""
    for dep in parse_deps(", ".join(item.depends), where=f"cygwin package {item.name}"):
        if dep.op is None or dep.version is None or dep.name in PSEUDO_PACKAGES:
            continue
        target = done.get(dep.name)
        if target is None:  # reached through a virtual name; relations on those are not checked
            continue
        if not satisfies(target.version, dep.op, dep.version):
            raise UserError(
                f"cygwin package {item.name}",
                f"needs {Dep(dep.name, dep.op, dep.version)} but {ini.source} has "
                f"{target.name} {target.version} as its current version",
                "use a setup.ini where the versions fit together",
            )
