"""Escaping filters: the only way a value reaches Nix, shell or XML text in a template."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_NIX_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
_NIX_KEYWORDS = frozenset(
    {"if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"}
)
_SH_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
# XML 1.0 allows only these characters; anything else cannot be represented at all.
# Attribute values normalise tab and line breaks to spaces unless they are character references.
_XML_ENTITIES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
    | {"\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}
)
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _no_nul(value: str, target: str) -> str:
    if "\0" in value:
        raise ValueError(f"a NUL character cannot be put into {target}")
    return value


def nix_str(value: object) -> str:
    """A Nix double-quoted string literal that evaluates back to `value`."""
    text = _no_nul(str(value), "a Nix string")
    out = []
    for i, ch in enumerate(text):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "$" and text[i + 1 : i + 2] == "{":
            out.append("\\$")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_IND_SPECIAL = re.compile(r"'+|[$\t\r]")
_IND_ESCAPES = {"$": "''$", "\t": "''\\t", "\r": "''\\r"}


def _ind_escape(match: re.Match[str]) -> str:
    token = match.group()
    if token[0] != "'":
        return _IND_ESCAPES[token]
    pairs, odd = divmod(len(token), 2)
    if not odd:
        return "'''" * pairs
    # A lone quote fuses with a following '' (an escape, or the closing quotes at the end).
    following = match.string[match.end() : match.end() + 1]
    return "'''" * pairs + ("''\\'" if following in ("", "$", "\t", "\r") else "'")


def nix_ind(value: object) -> str:
    """Text for the inside of a Nix indented string, read back verbatim.

    Templates write `''`, a newline, this, then `''` at once. Besides `''` and `$`, it defeats
    Nix's indentation stripping: one line with no leading space forces the common indent to
    zero, and whitespace-only lines (which Nix would strip) get their first space escaped."""
    text = _no_nul(str(value), "a Nix string")
    body = _IND_SPECIAL.sub(_ind_escape, text)
    lines = body.split("\n")
    first_content = True
    for n, line in enumerate(lines):
        blank = not line.strip(" ")
        if line.startswith(" ") and (blank or first_content):
            lines[n] = "''\\ " + line[1:]
        first_content = first_content and blank
    return "\n".join(lines)


def nix_name(key: str) -> str:
    """An attribute name: bare when it is an identifier, quoted otherwise."""
    if _NIX_IDENT.fullmatch(key) and key not in _NIX_KEYWORDS:
        return key
    return nix_str(key)


def nix(value: Any) -> str:
    """Any plain value (str, int, bool, None, list, mapping) as a Nix expression."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return nix_str(value)
    if isinstance(value, Mapping):
        items = " ".join(f"{nix_name(str(k))} = {nix(v)};" for k, v in value.items())
        return "{ " + items + " }" if items else "{ }"
    if isinstance(value, Sequence):
        return "[ " + " ".join(f"({nix(v)})" for v in value) + " ]" if value else "[ ]"
    return nix_str(str(value))


def sh(value: object) -> str:
    """One POSIX shell word that the shell reads back as `value`."""
    text = _no_nul(str(value), "a shell word")
    if text and _SH_SAFE.fullmatch(text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def sh_words(values: Sequence[object]) -> str:
    """Several shell words separated by spaces."""
    return " ".join(sh(v) for v in values)


def xml(value: object) -> str:
    """XML character data or a double-quoted attribute value."""
    text = str(value)
    if _XML_BAD.search(text):
        raise ValueError("text holds a character that XML 1.0 cannot carry")
    return text.translate(_XML_ENTITIES)


def nix_ident(value: object) -> str:
    """A bare Nix identifier (a function argument name); anything else is refused."""
    text = str(value)
    if not _NIX_IDENT.fullmatch(text) or text in _NIX_KEYWORDS:
        raise ValueError(f"{text!r} is not a Nix identifier")
    return text


def nix_formals(names: Sequence[object], optional: Sequence[object] = ()) -> str:
    """The formal arguments of a function taking these names, and those optional ones (null when
    not given): `{ a, b, c ? null }`."""
    formals = [nix_ident(n) for n in names] + [f"{nix_ident(n)} ? null" for n in optional]
    return "{ " + ", ".join(formals) + " }"


def comment(value: object) -> str:
    """Text for a one-line comment (#, //, ::): line breaks would end the comment early."""
    return " ".join(str(value).split())


def inf(value: object) -> str:
    """A double-quoted value for winnt.sif (INF syntax): `"` and `%` are doubled."""
    text = _no_nul(str(value), "winnt.sif")
    if any(ch in text for ch in "\r\n"):
        raise ValueError("a line break cannot be put into a winnt.sif value")
    return '"' + text.replace('"', '""').replace("%", "%%") + '"'


FILTERS = {
    "nix_ident": nix_ident,
    "nix_formals": nix_formals,
    "comment": comment,
    "nix": nix,
    "nix_str": nix_str,
    "nix_ind": nix_ind,
    "sh": sh,
    "sh_words": sh_words,
    "xml": xml,
    "inf": inf,
}
