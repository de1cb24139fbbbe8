"""Reading input and writing output: a missing or unreadable file is a user error naming it, and
output is all or nothing, so an error never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import UserError


def read_text(path: Path, fix: str, field: str | None = None) -> str:
    """The UTF-8 text of `path`. A missing or unreadable file is an error on `field` (the config
    field that names the file) or, without one, on the path; `fix` says what to do if missing."""
    where, which = (field, f"{str(path)!r} ") if field else (str(path), "")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(where, f"{which}does not exist" if field else "no such file", fix) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(
            where, f"{which}cannot be read: {reason}", "check the path and its permissions"
        ) from None


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    try:
        _write_atomic(path, text)
    except OSError as exc:
        raise UserError(
            str(path),
            f"cannot be written: {exc.strerror or exc}",
            "check the path and its permissions",
        ) from None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tree(root: Path, files: Mapping[str, str]) -> None:
    """Write several files under root, each atomically (all are rendered before the first write)."""
    for rel, text in files.items():
        write_atomic(root / rel, text)
