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
    # A base saves the guest and the controller (see runtime/derivation.py).
    guest, controller = cfg.vm.memory_mib, cfg.vm.controller_memory_mib
    both = f"{guest} + {controller} MiB"
    snap = cfg.snapshot
    if snap.mode == "template":
        return (
            f"template: revive ≈ constant (the RAM is mapped copy-on-write, not copied); "
            f"stores {both} of RAM (guest + controller) uncompressed (on disk only the RAM in "
            f"use: the files are sparse; `nix copy` and binary caches move all "
            f"{guest + controller} MiB)"
        )
    stored = "compressed" if snap.compression != "none" else "uncompressed"
    if snap.compression == "none":
        stored += f" (QEMU >= 9.0: sparse mapped-ram files, whose NARs are all {both})"
    return (
        f"compressed ({snap.compression}): revive grows with the RAM in use, "
        f"{_HOW[snap.compression]}; stores the RAM in use of the guest and the controller "
        f"{stored}"
    )
