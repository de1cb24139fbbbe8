"""Where Cygwin's setup.exe, installing from a local package dir (`-L -l DIR`), finds setup.ini and
each tarball, computed over a list of file paths (an ISO's Joliet tree, as Windows reads it).
A stand-in for setup.exe, which cannot run here: it follows cygwin-apps/setup's source (lines of
release_2.936, 16a520f; the same logic since release_2.874):

- fromcwd.cc:111-122 do_from_local_dir: DIR/<arch>/setup.ini, else any DIR/<name>/<arch>/setup.ini
  (fromcwd.cc:60-94 compares <arch> without case, as casecompare does);
- ini.cc:193-196 do_local_ini: the mirror key of the packages in it is rfc1738_unescape(<name>);
- download.cc:130-134 check_for_cached: a tarball is DIR/<rfc1738_escape_part(key)>/<install path>;
- csu_util/rfc1738.cc: the escaping and unescaping, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable

_UNSAFE = b"<>\"#{}|\\^~[]`' "  # rfc1738_unsafe_chars
_RESERVED = b";/?:@=&"  # rfc1738_reserved_chars, escaped by rfc1738_escape_part
_HEX = b"0123456789abcdefABCDEF"


def escape_part(text: str) -> str:
    """rfc1738_do_escape(url, 1): unsafe, reserved, '%', controls, 0x7f and non-ASCII as %xx."""
    out = []
    for b in text.encode():  # find.cc hands setup names as UTF-8
        escape = b in _UNSAFE or b in _RESERVED or b == ord("%") or b <= 0x1F or b >= 0x7F
        out.append(f"%{b:02x}" if escape else chr(b))
    return "".join(out)


def unescape(text: str) -> str:
    """rfc1738_unescape: `%%` is `%`, `%00` stays `%`, `%xy` the byte xy (sscanf %x: as many hex
    digits of the two as lead), anything else as it is."""
    s = text.encode()
    out = bytearray()
    j = 0
    while j < len(s):
        out.append(s[j])
        if s[j] == ord("%") and j + 1 < len(s):
            if s[j + 1] == ord("%"):
                j += 1
            elif j + 2 < len(s):
                pair = s[j + 1 : j + 3]
                digits = len(pair) - len(pair.lstrip(_HEX))
                if pair == b"00":
                    j += 2
                elif digits:
                    out[-1] = int(pair[:digits], 16)
                    j += 2
        j += 1
    return out.decode(errors="replace")


def mirror_keys(files: Iterable[str], local_dir: str, arch: str) -> list[str]:
    """The mirror keys of the setup.ini files setup finds under `local_dir` (do_from_local_dir's
    single-mirror layout first, then its multi-mirror one, as do_local_ini names them)."""
    prefix = local_dir.rstrip("/") + "/"
    parts = [f[len(prefix) :].split("/") for f in files if f.startswith(prefix)]
    single = [p for p in parts if len(p) == 2 and [x.lower() for x in p] == [arch, "setup.ini"]]
    if single:
        return [""]  # the mirror is DIR itself: tarballs at DIR/<install path>
    multi = [p for p in parts if len(p) == 3 and [x.lower() for x in p[1:]] == [arch, "setup.ini"]]
    return sorted(unescape(p[0]) for p in multi)


def tarball_path(local_dir: str, key: str, install_path: str) -> str:
    """check_for_cached: where setup looks for a tarball of the mirror `key`."""
    if not key:
        return f"{local_dir.rstrip('/')}/{install_path}"
    return f"{local_dir.rstrip('/')}/{escape_part(key)}/{install_path}"
