"""What a QEMU binary can do, asked over QMP instead of assumed from its version number.

Users run anything from QEMU 8.2 (nixos-24.05) to 10.x, and distributions backport or drop
features, so the runtime asks the binary itself: `query-version`, the migration capabilities
it knows (`query-migrate-capabilities`) and the properties of its file memory backend
(`qom-list-properties` on memory-backend-file).  A probe starts `-machine none` (~25 ms) and
is cached per binary for the life of the process; a save keeps the answer beside the state, and
a revive by the same binary reads it there.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .qmp import QMPClient, QMPError
from .supervise import StageError, Supervisor

FILE_BACKEND = "memory-backend-file"


class CapsError(StageError):
    """The binary could not be probed (missing, crashed, not QEMU)."""


@dataclass(frozen=True)
class QemuCaps:
    version: tuple[int, int, int]
    migrate: frozenset[str]  # migration capabilities this QEMU knows (on or off)
    file_backend: frozenset[str]  # properties of memory-backend-file

    @property
    def readonly_ram_file(self) -> bool:
        """`readonly=on,rom=off` maps a file we may not write privately and writable.

        That is QEMU 8.2's "VM templating" (the `rom` property came with it); before it,
        `readonly=on` meant a read-only guest RAM, which crashes a running guest.
        """
        return {"readonly", "rom"} <= self.file_backend

    @property
    def ignore_shared(self) -> bool:
        """`x-ignore-shared`: a template save leaves the file-backed RAM out of the stream."""
        return "x-ignore-shared" in self.migrate

    @property
    def mapped_ram(self) -> bool:
        """`mapped-ram` + `multifd`: RAM at fixed offsets of a file, written by several threads
        (QEMU >= 9.0)."""
        return {"mapped-ram", "multifd"} <= self.migrate

    def describe(self) -> str:
        v = ".".join(map(str, self.version))
        return (
            f"QEMU {v}: read-only template revive "
            f"{'yes' if self.readonly_ram_file else 'no (copies the RAM file)'}, "
            f"mapped-ram {'yes' if self.mapped_ram else 'no'}, "
            f"x-ignore-shared {'yes' if self.ignore_shared else 'no'}"
        )


def probe_client(client: QMPClient) -> QemuCaps:
    """Ask a running QEMU (any machine, any state) what it can do."""
    ver = client.execute("query-version").get("qemu", {})
    version = (int(ver.get("major", 0)), int(ver.get("minor", 0)), int(ver.get("micro", 0)))
    caps = client.execute("query-migrate-capabilities")
    migrate = frozenset(str(c.get("capability")) for c in caps if isinstance(c, dict))
    try:
        props = client.execute("qom-list-properties", {"typename": FILE_BACKEND})
    except QMPError:  # built without it (not on Linux): no file backend at all
        props = []
    backend = frozenset(str(p.get("name")) for p in props if isinstance(p, dict))
    return QemuCaps(version=version, migrate=migrate, file_backend=backend)


Key = tuple[str, int, int, int]
_CACHE: dict[Key, QemuCaps] = {}


def binary_key(qemu: str) -> Key:
    """Which binary `qemu` is: its real path, inode, size and mtime."""
    exe = shutil.which(qemu)
    if exe is None:
        raise CapsError(f"cannot probe QEMU: {qemu!r} is not an executable (nor on PATH)")
    real = Path(exe).resolve()
    st = real.stat()
    return (str(real), st.st_ino, st.st_size, st.st_mtime_ns)


def record(qemu: str, caps: QemuCaps) -> dict[str, Any]:
    """The probe's answer as JSON, kept beside a saved state: a revive by the same binary
    reads it instead of starting a probe of its own (25-110 ms)."""
    return {
        "binary": list(binary_key(qemu)),
        "version": list(caps.version),
        "migrate": sorted(caps.migrate),
        "file_backend": sorted(caps.file_backend),
    }


def from_record(qemu: str, rec: Any) -> QemuCaps | None:
    """The recorded answer if it is this very binary's, else None (probe instead)."""
    try:
        if tuple(rec["binary"]) != binary_key(qemu):
            return None
        major, minor, micro = (int(v) for v in rec["version"])
        return QemuCaps(
            version=(major, minor, micro),
            migrate=frozenset(str(c) for c in rec["migrate"]),
            file_backend=frozenset(str(p) for p in rec["file_backend"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def probe_qemu(qemu: str, *, deadline: float = 30.0, known: Any = None) -> QemuCaps:
    """Start `qemu -machine none`, probe it over QMP, quit it.  Cached per binary (path,
    inode, size, mtime), so a stage with several VMs probes once; `known` (a `record`, as a
    saved state keeps it) answers for the binary it names without a probe."""
    key = binary_key(qemu)
    if key not in _CACHE:
        _CACHE[key] = from_record(qemu, known) or _probe_binary(key[0], deadline)
    return _CACHE[key]


def _probe_binary(exe: str, deadline: float) -> QemuCaps:
    with tempfile.TemporaryDirectory(prefix="wgcaps-") as tmp, Supervisor() as sup:
        sock = Path(tmp) / "qmp"
        err = Path(tmp) / "stderr"
        argv = [exe, "-machine", "none", "-nodefaults", "-display", "none", "-S"]
        argv += ["-qmp", f"unix:{sock},server=on,wait=off"]
        with err.open("wb") as stderr:
            proc = sup.spawn("QEMU probe", argv, stderr=stderr)
        try:
            client = QMPClient.connect(
                str(sock), deadline=deadline, timeout=deadline, alive=lambda: proc.poll() is None
            )
        except QMPError as exc:
            raise CapsError(
                f"cannot probe QEMU {exe}: {exc} ({_exited(proc)}; "
                f"{err.read_text('utf-8', 'replace').strip()[-300:] or 'no message'})"
            ) from exc
        try:
            return probe_client(client)
        except QMPError as exc:
            raise CapsError(f"cannot probe QEMU {exe}: {exc}") from exc
        finally:
            with contextlib.suppress(QMPError):
                client.quit(timeout=deadline)  # returns once QEMU has closed the socket
            client.close()


def _exited(proc: subprocess.Popen[Any]) -> str:
    code = proc.poll()
    return "still running" if code is None else f"exit code {code}"
