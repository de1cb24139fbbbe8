"""What each snapshot mode costs, in the words `wingen check` prints (figures: bench/snapshot.py
and the README's table of store footprints)."""

from __future__ import annotations

from .config import Config

_HOW = {
    "zstd": "decompressed on every revive (zstd -2, all cores)",
    "gzip": "decompressed on every revive (gzip -6, one core: several times slower than zstd)",
    "none": "read back on every revive",
}


def snapshot_cost(cfg: Config) -> str:
    mib = cfg.vm.memory_mib
    snap = cfg.snapshot
    if snap.mode == "template":
        return (
            f"template: revive ≈ constant (the RAM is mapped copy-on-write, not copied); "
            f"stores {mib} MiB of RAM uncompressed (on disk only the RAM in use: the file is "
            f"sparse; `nix copy` and binary caches move all {mib} MiB)"
        )
    stored = "compressed" if snap.compression != "none" else "uncompressed"
    if snap.compression == "none":
        stored += f" (QEMU >= 9.0: a sparse mapped-ram file, whose NAR is all {mib} MiB)"
    return (
        f"compressed ({snap.compression}): revive grows with the RAM in use, "
        f"{_HOW[snap.compression]}; stores the RAM in use {stored}"
    )
