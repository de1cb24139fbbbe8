"""Uncompressed saves as mapped-ram files (QEMU >= 9.0, where the probe finds it).

With `mapped-ram` + `multifd`, QEMU writes each RAM page at a fixed offset of the state file,
from several threads, and skips zero pages (holes): for `compression = "none"` that saves and
revives faster than one stream through a pipe (bench/snapshot.py measures both).  Compressed
modes keep the pipe: mapped-ram refuses multifd compression, and compressing the file after
the save is slower than zstd on the stream (also measured there).  The file is sparse: its
disk use is the RAM in use, but its apparent size (and NAR size) is the guest's RAM size.
QEMU needs a seekable `file:` URI (an `fd:` is refused even for a file), so it opens the path
itself: read-only on revive.
"""

from __future__ import annotations

import os
from pathlib import Path

from .qemu_caps import QemuCaps
from .qmp import QMPClient

FORMAT = "mapped-ram"
STREAM = "stream"  # what a save without a recorded format is


def wanted(compression: str, caps: QemuCaps) -> bool:
    return compression == "none" and caps.mapped_ram


def enable(client: QMPClient) -> None:
    client.execute(
        "migrate-set-capabilities",
        {
            "capabilities": [
                {"capability": "mapped-ram", "state": True},
                {"capability": "multifd", "state": True},
            ]
        },
    )
    client.execute("migrate-set-parameters", {"multifd-channels": max(2, os.cpu_count() or 2)})


def uri(path: Path) -> str:
    return f"file:{path}"
