"""How a template revive maps the stored guest RAM: zero-copy where QEMU can, a copy where not.

A template base stores the guest RAM as a plain (sparse) file.  Every revive maps it privately
(copy-on-write), so the guest never writes back into it and many revives share one file.
Store files are read-only and, on a multi-user Nix, owned by someone other than the builder:
  * QEMU >= 8.2 ("VM templating"): `readonly=on,rom=off` opens the file read-only and maps it
    private and writable.  Nothing is copied, whoever owns the file; the revive costs the
    same whatever the RAM size.
  * older QEMU opens the file read-write even with `share=off`.  A file we may write is mapped
    as it is; one we may not (a read-only store) is first copied sparsely beside the sockets,
    which costs time in proportion to the RAM in use.
Which case applies is probed (qemu_caps), not guessed from a version number.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .qemu_caps import QemuCaps, probe_qemu
from .sparse import sparse_copy
from .supervise import log


@dataclass(frozen=True)
class TemplateRam:
    path: Path  # the file QEMU maps
    options: str  # extra memory-backend-file options
    copy_from: Path | None = None  # the stored file, when `path` must first be copied from it


def plan(stored: Path, copy: Path, caps: QemuCaps) -> TemplateRam:
    """Map `stored` read-only in place if QEMU can; else in place if writable; else a copy."""
    if caps.readonly_ram_file:
        return TemplateRam(stored, "readonly=on,rom=off")
    if os.access(stored, os.W_OK):
        return TemplateRam(stored, "")
    return TemplateRam(copy, "", copy_from=stored)


def plan_for_qemu(stored: Path, copy: Path, qemu: str, known: Any = None) -> TemplateRam:
    """`known`: the probe recorded at the save (qemu_caps.record), if any."""
    return plan(stored, copy, probe_qemu(qemu, known=known))


def prepare_ram(ram: TemplateRam, name: str) -> None:
    """Make the copy the plan needs (old QEMU, read-only store); nothing to do otherwise."""
    if ram.copy_from is None:
        return
    t0 = time.monotonic()
    sparse_copy(ram.copy_from, ram.path)
    log(
        f"VM {name}: this QEMU opens {ram.copy_from} read-write (no readonly=on,rom=off before "
        f"8.2): revived a sparse copy, made in {time.monotonic() - t0:.2f} s"
    )
