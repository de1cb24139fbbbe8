"""A parser for Cygwin's setup.ini, the package index setup-x86_64.exe reads.

Format (sourceware.org/cygwin-apps/setup.ini.html, and what calm writes today):
- header lines (`release:`, `arch:`, `setup-version:` …) before the first package;
- `@ name` (or `Package: name`) starts a package; `key: value` lines follow;
- a value that opens a `"` runs on across lines until the quote closes (`ldesc:`, `message:`);
  setup's own lexer has no escapes inside quotes, so neither do we;
- the first section is the current version; `[prev]` and `[test]` (and the old `[curr]`) start
  further version sections; `#` lines are comments;
- `requires:` is space-separated names (the old form); `depends2:`, `provides:`, `obsoletes:`,
  `conflicts:` and `build-depends:` are comma-separated, each name optionally followed by a version
  relation like `(>= 6.3)`;
- `install: path size sha512` names the binary tarball; `category:` is space-separated.
Unknown keys are kept and ignored, as setup does for forward compatibility.

Setup's lexer (cygwin-setup `inilex.ll`) also takes other spellings, found in older files (Cygwin
Time Machine snapshots): `Version:`, `Depends2:`/`depends:`/`Depends:`, `Obsoletes:`, `Provides:`,
`Conflicts:`, `Build-Depends:` (either capital), `Filename:` for `install:`, `Section:` for
`category:`, `Source:` for `srcpkg:`; `[exp]` for `[test]`, and any other `[word]` starts a section
setup sets aside; `<<` and `>>` (Debian's strict relations) as `<` and `>`. An install line's hash
is 128 hex digits, or the same SHA-512 as 86 base64url characters, or an MD5 (32 hex digits). This
parser reads all of them into the lowercase, hex form calm writes today.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from ..errors import UserError

# setup.exe invents these itself (from the running Windows); setup.ini only refers to them.
PSEUDO_PACKAGES = frozenset({"_windows"})

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_-]*):(?:[ \t](.*))?")
_DEP = re.compile(
    r"([A-Za-z0-9_][A-Za-z0-9._+-]*)(?:\s*\(\s*(<<|>>|<=|>=|<|>|=)\s*([^\s()]+)\s*\))?"
)
_HEX512 = re.compile(r"[0-9a-f]{128}")
_PATH = re.compile(r"[A-Za-z0-9._+~-]+(/[A-Za-z0-9._+~-]+)*")
_VERSION = re.compile(r"[A-Za-z0-9._+~:-]+")
_B64URL512 = re.compile(r"[A-Za-z0-9_-]{86}")
_MD5 = re.compile(r"[0-9a-f]{32}")
SECTIONS = {"[curr]": "curr", "[prev]": "prev", "[test]": "test", "[exp]": "test"}
# Any other `[word]` (inilex.ll: "[" {STR} "]", T_OTHER): a section whose fields setup sets aside.
_OTHER_SECTION = re.compile(r"\[[!a-zA-Z0-9_./:+~-]+\]")
# inilex.ll's other spellings of the keys below, each read as the one calm writes today.
_KEY_ALIASES = {
    "Version": "version",
    "Filename": "install",
    "Section": "category",
    "Source": "srcpkg",
    "depends": "depends2",
    "Depends": "depends2",
    "Depends2": "depends2",
    "Obsoletes": "obsoletes",
    "Provides": "provides",
    "Conflicts": "conflicts",
    **{f"{b}uild-{d}epends": "build-depends" for b in "bB" for d in "dD"},
}
# Debian's strict relations, which setup's lexer reads as `<` and `>`.
_RELATIONS = {"<<": "<", ">>": ">"}


@dataclass(frozen=True)
class Dep:
    """One dependency: a name and an optional version relation."""

    name: str
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return self.name if self.op is None else f"{self.name} ({self.op} {self.version})"


@dataclass(frozen=True)
class Install:
    path: str
    size: int
    sha512: str


@dataclass(frozen=True)
class Version:
    """One version section of a package (current, [prev] or [test])."""

    kind: str  # "curr", "prev", "test", or "other" (a section setup sets aside)
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str | None:
        return self.fields.get("version")


@dataclass(frozen=True)
class Package:
    name: str
    line: int  # where its `@` line is, for messages
    versions: tuple[Version, ...]

    @property
    def current(self) -> Version:
        return self.versions[0]

    def get(self, key: str) -> str | None:
        """A field of the current version, falling back to the package-level lines before it."""
        return self.current.fields.get(key)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple((self.get("category") or "").split())

    @property
    def sdesc(self) -> str:
        return unquote(self.get("sdesc") or "")


@dataclass(frozen=True)
class SetupIni:
    headers: dict[str, str]
    packages: dict[str, Package]
    source: str = "setup.ini"

    @property
    def arch(self) -> str | None:
        return self.headers.get("arch")


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse(text: str, source: str = "setup.ini") -> SetupIni:
    """Parse setup.ini text; a malformed line is a UserError naming the file and line."""

    def fail(lineno: int, problem: str) -> UserError:
        return UserError(
            source, f"line {lineno}: {problem}", "pass the setup.ini from a Cygwin mirror, unedited"
        )

    headers: dict[str, str] = {}
    packages: dict[str, Package] = {}
    name: str | None = None
    start = 0
    sections: list[Version] = []

    def finish() -> None:
        if name is not None:
            if name in packages:
                raise fail(start, f"package {name!r} appears twice")
            packages[name] = Package(name, start, tuple(sections))

    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        lineno, line = i + 1, lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("@") or stripped.startswith("Package:"):
            finish()
            name = stripped[1:].strip() if stripped.startswith("@") else stripped[8:].strip()
            if not _NAME.fullmatch(name):
                raise fail(lineno, f"{name!r} is not a package name")
            start, sections = lineno, [Version("curr")]
            continue
        if stripped in SECTIONS or _OTHER_SECTION.fullmatch(stripped):
            if name is None:
                raise fail(lineno, f"{stripped} before the first package")
            kind = SECTIONS.get(stripped, "other")
            if kind == "curr":  # the old explicit marker for the (already open) first section
                continue
            sections.append(Version(kind))
            continue
        m = _KEY.fullmatch(line.rstrip())
        if m is None:
            raise fail(lineno, f"not a 'key: value' line: {line[:60]!r}")
        key, value = _KEY_ALIASES.get(m.group(1), m.group(1)), m.group(2) or ""
        # A value with an unclosed quote continues on the following lines.
        while value.count('"') % 2:
            if i >= len(lines):
                raise fail(lineno, f"the quoted value of {key!r} never closes")
            value += "\n" + lines[i]
            i += 1
        value = value.strip()
        if name is None:
            headers[key] = value
        else:
            target = sections[-1].fields
            if key in target and key not in ("message",):
                raise fail(lineno, f"{key!r} given twice for package {name!r}")
            target[key] = value
    finish()
    return SetupIni(headers, packages, source)


def parse_deps(value: str, *, where: str) -> tuple[Dep, ...]:
    """A comma-separated list with optional version relations (depends2:, provides: …)."""
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        m = _DEP.fullmatch(part)
        if m is None:
            raise UserError(where, f"cannot read the dependency {part!r}", "is the file setup.ini?")
        op = _RELATIONS.get(m.group(2), m.group(2))
        out.append(Dep(m.group(1), op, m.group(3)))
    return tuple(out)


def dependencies(pkg: Package, source: str) -> tuple[Dep, ...]:
    """The current version's dependencies: `depends2:` when given, else the old `requires:`."""
    where = f"{source}: package {pkg.name}"
    depends2 = pkg.get("depends2")
    if depends2 is not None:
        return parse_deps(depends2, where=where)
    return tuple(Dep(n) for n in (pkg.get("requires") or "").split())


def provides(pkg: Package, source: str) -> tuple[str, ...]:
    value = pkg.get("provides")
    if value is None:
        return ()
    return tuple(d.name for d in parse_deps(value, where=f"{source}: package {pkg.name}"))


def install(pkg: Package, source: str) -> Install:
    """The current version's binary tarball; an error names the package when there is none."""
    value = pkg.get("install")
    fix = "pick another package, or a setup.ini where it has a current binary version"
    if value is None:
        raise UserError(
            f"cygwin package {pkg.name}",
            f"has no install line for its current version ({source})",
            fix,
        )
    parts = value.split()
    if len(parts) == 3 and _MD5.fullmatch(parts[2]):
        # nixpkgs' fetchurl takes no MD5, and a lock pins every file by SHA-512.
        raise UserError(
            f"cygwin package {pkg.name}",
            f"install line {value[:80]!r} gives only an MD5 ({source}); wingen pins every "
            "tarball by SHA-512",
            "use a setup.ini (a later Cygwin Time Machine snapshot) whose install lines carry "
            "SHA-512 hashes",
        )
    if (
        len(parts) != 3
        or not _PATH.fullmatch(parts[0])
        or ".." in parts[0].split("/")
        or not parts[1].isdigit()
        or not (_HEX512.fullmatch(parts[2].lower()) or _B64URL512.fullmatch(parts[2]))
    ):
        raise UserError(
            f"cygwin package {pkg.name}",
            f"install line {value[:80]!r} is not 'path size sha512' ({source})",
            fix,
        )
    return Install(parts[0], int(parts[1]), sha512_hex(parts[2]))


def sha512_hex(digest: str) -> str:
    """A SHA-512 as setup.ini gives it (128 hex digits, or 86 base64url characters, RFC 4648
    without padding: inilex.ll decodes 21 groups of four and the high 8 bits of the last two) as
    lowercase hex."""
    if len(digest) == 128:
        return digest.lower()
    raw = base64.urlsafe_b64decode(digest + "==")
    return raw.hex()


def check_version(text: str, what: str) -> str:
    if not _VERSION.fullmatch(text):
        raise UserError(what, f"{text!r} is not a version", "is the file setup.ini?")
    return text
