"""`wingen prefetch`: hash a local file or URL with nix-prefetch-url (which also adds it to the
store, under the same path `nix-store --add-fixed sha256` gives), and record it in the config."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import tomlkit
from tomlkit.items import InlineTable, Table

from .config import MEDIA_FIELDS as FIELDS
from .config import STORE_NAME
from .errors import UserError
from .files import read_text, write_atomic
from .loader import parse_config
from .process import run


@dataclass(frozen=True)
class Prefetched:
    name: str
    sha256: str
    url: str | None  # None for a local file (the config then names it)
    store_path: str | None


def prefetch(source: str) -> Prefetched:
    """Hash `source` (a path or URL); progress from nix-prefetch-url goes to stderr."""
    if "://" in source:
        url, local = source, None
        name = unquote(urlparse(source).path.rstrip("/").rsplit("/", 1)[-1]) or "download"
    else:
        path = Path(source)
        if not path.is_file():
            raise UserError(
                source,
                "no such file" if not path.exists() else "is not a regular file",
                "give the path of the ISO or installer, or its URL",
            )
        local = path.resolve()
        url, name = local.as_uri(), local.name
    if not STORE_NAME.fullmatch(name):
        raise UserError(
            source,
            f"{name!r} cannot be a Nix store name",
            "rename the file (letters, digits and + - . _ ? = only) and prefetch it again",
        )
    print(f"prefetching {source} …", file=sys.stderr, flush=True)
    proc = run(
        ["nix-prefetch-url", "--type", "sha256", "--print-path", "--name", name, url],
        stream_stderr=True,
    )
    lines = proc.stdout.split()
    if not lines:
        raise UserError(source, "nix-prefetch-url printed no hash", "run it by hand to see why")
    store_path = lines[1] if len(lines) > 1 else None
    return Prefetched(name, lines[0], None if local else url, store_path)


def write_field(config: Path, field: str, got: Prefetched) -> None:
    """Set `field` to { name|url, sha256 } in the config, keeping its comments and layout."""
    if field not in FIELDS:
        raise UserError("--field", f"{field!r} is not a media field", f"use one of {list(FIELDS)}")
    doc = tomlkit.parse(read_text(config, "pass -c CONFIG or run `wingen init`"))
    section, key = field.split(".")
    table = doc.get(section)
    if table is None:
        table = tomlkit.table()
        doc[section] = table
    if not isinstance(table, Table | InlineTable):
        raise UserError(section, "is not a table", f"make [{section}] a table")
    value = {"url": got.url} if got.url is not None else {"name": got.name}
    value["sha256"] = got.sha256
    current = table.get(key)
    if isinstance(current, InlineTable | Table):
        for old in ("name", "url", "sha256"):
            if old in current:
                del current[old]
        current.update(value)  # in place: the comment after it stays
    else:
        inline = tomlkit.inline_table()
        inline.update(value)
        table[key] = inline
    text = tomlkit.dumps(doc)
    parse_config(tomlkit.parse(text).unwrap())  # never write a config that does not load
    write_atomic(config, text)
