"""Sparse files: the template-mode RAM file is stored with its zero blocks as holes, and copied
without filling them in (a revive maps it privately, so the stored file is never written)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

_FALLOC_KEEP_SIZE_PUNCH_HOLE = 0x01 | 0x02
_BLOCK = 4096
_CHUNK = 4 << 20


def _fallocate() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


def _data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    extents = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            break
        stop = os.lseek(fd, start, os.SEEK_HOLE)
        extents.append((start, stop))
        pos = stop
    return extents


def punch_zero_holes(path: Path) -> None:
    """Deallocate every all-zero 4 KiB block of path (its size stays)."""
    fallocate = _fallocate()
    if fallocate is None:
        return
    zero = bytes(_CHUNK)
    with path.open("r+b") as f:
        fd = f.fileno()
        for start, stop in _data_extents(fd, os.fstat(fd).st_size):
            pos = start
            while pos < stop:
                chunk = os.pread(fd, min(_CHUNK, stop - pos), pos)
                if not chunk:
                    break
                runs = [(0, len(chunk))] if chunk == zero[: len(chunk)] else _zero_runs(chunk)
                for off, length in runs:
                    fallocate(fd, _FALLOC_KEEP_SIZE_PUNCH_HOLE, pos + off, length)
                pos += len(chunk)


def _zero_runs(chunk: bytes) -> list[tuple[int, int]]:
    zero = bytes(_BLOCK)
    runs: list[tuple[int, int]] = []
    for off in range(0, len(chunk) - _BLOCK + 1, _BLOCK):
        if chunk[off : off + _BLOCK] == zero:
            if runs and runs[-1][0] + runs[-1][1] == off:
                runs[-1] = (runs[-1][0], runs[-1][1] + _BLOCK)
            else:
                runs.append((off, _BLOCK))
    return runs


def sparse_copy(src: Path, dst: Path) -> None:
    """Copy src to dst, copying only data extents (holes stay holes)."""
    with src.open("rb") as fi, dst.open("wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        for start, stop in _data_extents(fi.fileno(), size):
            pos = start
            while pos < stop:
                n = os.copy_file_range(fi.fileno(), fo.fileno(), stop - pos, pos, pos)
                if n <= 0:
                    break
                pos += n
        fo.truncate(size)


def store_ram(ram_file: Path, dest: Path) -> None:
    punch_zero_holes(ram_file)
    try:
        ram_file.replace(dest)
    except OSError:  # another file system: copy sparsely, then rename
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        try:
            sparse_copy(ram_file, tmp)
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)
        ram_file.unlink()
