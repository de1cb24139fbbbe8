"""Writing output: all or nothing, so an error never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import UserError


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
