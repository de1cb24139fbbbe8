"""Save a running VM's state to a file and revive it, through QMP and an fd we own.

The migration stream goes over a pipe (or the file itself) handed to QEMU with `getfd`, so the
compressor is our child: we see its exit code, kill it on failure, and rename the file only
when everything succeeded.  QEMU's own `compress` capability is not used: it deflates page
by page inside QEMU and writes a stream only QEMU can read; an external `zstd -T0` on the
whole stream is faster and smaller.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import mapped_ram
from .qemu_caps import probe_client
from .qmp import QMPClient, QMPDisconnectedError, QMPError
from .sparse import store_ram
from .spec import Tools
from .supervise import StageError, Supervisor, describe_exit, log

FD_NAME = "wingen-migration"
MAX_BANDWIDTH = 64 << 30  # bytes/s: never let QEMU's 128 MiB/s default throttle a save
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031
DEFAULT_TOOLS = Tools()


class SnapshotError(StageError):
    """Saving or reviving failed (QEMU, the (de)compressor or the state file)."""


def ram_path(state: Path) -> Path:
    """Where a template-mode save keeps the guest RAM beside the device state."""
    return state.with_name(state.name + ".ram")


def meta_path(state: Path) -> Path:
    """What the state was saved from (accel, memory, compression), checked before a revive."""
    return state.with_name(state.name + ".json")


def read_meta(state: Path) -> dict[str, Any]:
    """What the state was saved with ({} if saved without a stage, e.g. by the CLI)."""
    try:
        meta = json.loads(meta_path(state).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{meta_path(state)}: unreadable ({exc})") from exc
    if not isinstance(meta, dict):
        raise SnapshotError(f"{meta_path(state)}: not a JSON object")
    return meta


def check_meta(state: Path, want: dict[str, Any]) -> None:
    """Refuse, with a fix, a revive that cannot work: the state was saved with other settings
    (accel, CPU model, RAM size, format: whatever the stage records at save, it checks here).
    The one revive check: every stage that revives goes through it."""
    meta = read_meta(state)
    for key, value in want.items():
        if key in meta and meta[key] != value:
            raise SnapshotError(
                f"state {state} was saved with {key}={meta[key]!r} but is revived with "
                f"{key}={value!r}; revive with the same {key} (or rebuild the snapshot)"
            )


def _big_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
    return r, w


def _set_ignore_shared(client: QMPClient, on: bool) -> None:
    client.execute(
        "migrate-set-capabilities",
        {"capabilities": [{"capability": "x-ignore-shared", "state": on}]},
    )


def save(
    client: QMPClient,
    to: Path,
    compression: str,
    *,
    sup: Supervisor,
    deadline: float,
    tools: Tools = DEFAULT_TOOLS,
    ram_file: Path | None = None,
    name: str = "guest",
    meta: dict[str, Any] | None = None,
    fsync: bool = False,
    quit_budget: float = 10.0,
    mapped: bool | None = None,
) -> dict[str, float]:
    """Stop the guest, migrate it into `to` (atomically), quit QEMU and wait until it is gone.

    Template mode: only device state goes to `to`; `ram_file` (the VM's share=on RAM file)
    is made sparse where zero and moved to `to.ram`.  Returns timings and sizes.
    The rename makes the file appear whole or not at all; fsync=True also makes it survive a
    power loss (a Nix build does not need that: an unfinished output is never registered).
    `none` goes to a mapped-ram file where the probe finds it (mapped=None), see mapped_ram.py.
    """
    template = compression == "template"
    if template and (ram_file is None or not ram_file.exists()):
        raise SnapshotError(
            f"save {name}: template mode needs a VM whose RAM is a share=on "
            f'file (VM option "template": true); {ram_file} does not exist'
        )
    start = time.monotonic()
    end = start + deadline
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = to.with_name(f".{to.name}.tmp-{os.getpid()}")
    comp: Tool | None = None
    ok = False
    try:
        try:
            client.execute("stop")
            _set_ignore_shared(client, template)
            client.execute("migrate-set-parameters", {"max-bandwidth": MAX_BANDWIDTH})
            if mapped is None:
                mapped = mapped_ram.wanted(compression, probe_client(client))
            if mapped:
                mapped_ram.enable(client)
                meta = {**(meta or {}), "format": mapped_ram.FORMAT}
            with tmp.open("wb") as out:
                if mapped:
                    client.execute("migrate", {"uri": mapped_ram.uri(tmp)})
                else:
                    argv = tools.compressor(compression)
                    comp = _hand_fd(client, sup, argv, out, outgoing=True)
                    client.execute("migrate", {"uri": f"fd:{FD_NAME}"})
                info = _poll_migration(client, end, f"save {name}")
                if comp is not None:
                    code = _wait_proc(comp.proc, end)
                    if code != 0:
                        raise SnapshotError(f"save {name}: {comp.failure(code)}")
                if fsync:
                    out.flush()
                    os.fsync(out.fileno())
        except (SnapshotError, QMPError, OSError) as exc:
            # A compressor that failed (a full disk) makes QEMU's write fail ("Broken pipe"):
            # its own error is the reason.
            failed = comp.exited(1.0) if comp is not None else None
            if comp is not None and failed:
                raise SnapshotError(f"save {name}: {comp.failure(failed)}") from exc
            raise
        saved = time.monotonic()
        # quit has its own budget: a save that finished near its deadline is not thrown away.
        client.quit(timeout=quit_budget)
        if template:
            assert ram_file is not None
            store_ram(ram_file, ram_path(to))
        if meta is not None:
            mtmp = meta_path(to).with_name(f".{to.name}.json.tmp-{os.getpid()}")
            mtmp.write_text(json.dumps({**meta, "compression": compression}, sort_keys=True))
            mtmp.replace(meta_path(to))
        tmp.replace(to)
        if fsync:
            _fsync_dir(to.parent)
        ok = True
    except QMPDisconnectedError as exc:
        raise SnapshotError(f"save {name}: QEMU went away during the save ({exc})") from exc
    except QMPError as exc:
        raise SnapshotError(f"save {name}: {exc}") from exc
    finally:
        if comp is not None:
            comp.close(sup)
        if not ok:
            tmp.unlink(missing_ok=True)
    size = to.stat().st_size
    result = {
        "save_s": saved - start,
        "total_s": time.monotonic() - start,
        "state_bytes": float(size),
        "ram_mib": info.get("ram_total", 0.0) / 2**20,
    }
    if template:
        result["ram_disk_bytes"] = float(ram_path(to).stat().st_blocks * 512)
    log(
        f"save {name}: done in {result['save_s']:.2f} s, state {size / 2**20:.1f} MiB"
        + (f", RAM file {result['ram_disk_bytes'] / 2**20:.1f} MiB on disk" if template else "")
    )
    return result


def _poll_migration(client: QMPClient, end: float, what: str) -> dict[str, float]:
    started = time.monotonic()
    last_log = started
    while True:
        info: dict[str, Any] = client.execute("query-migrate")
        status = info.get("status", "?")
        ram = info.get("ram", {})
        if status == "completed":
            return {"ram_total": float(ram.get("total", 0))}
        if status in ("failed", "cancelled"):
            raise SnapshotError(f"{what}: migration {status}: {info.get('error-desc', '')}")
        now = time.monotonic()
        if now >= end:
            with contextlib.suppress(QMPError):
                client.execute("migrate_cancel")
            raise SnapshotError(
                f"{what}: deadline: migration still {status} after {now - started:.1f} s"
            )
        if now - last_log >= 2.0 and ram:
            total = max(1, int(ram.get("total", 1)))
            done = total - int(ram.get("remaining", 0))
            log(
                f"{what}: {100 * done / total:.0f}% of RAM, "
                f"{float(ram.get('mbps', 0)) / 8:.0f} MB/s, {now - started:.1f} s"
            )
            last_log = now
        time.sleep(0.02 if now - started < 1 else 0.1)


def _wait_proc(proc: subprocess.Popen[bytes], end: float) -> int:
    try:
        return proc.wait(max(0.0, end - time.monotonic()))
    except subprocess.TimeoutExpired as exc:
        raise SnapshotError(f"deadline: {proc.args!r} still running") from exc


@dataclass
class Tool:
    """A (de)compressor between QEMU and the state file; its stderr is kept in memory (a full
    disk must not also swallow the message saying so)."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]

    def exited(self, wait: float) -> int | None:
        try:
            return self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            return None

    def failure(self, code: int) -> str:
        self.stderr.seek(0)
        text = self.stderr.read()[-500:].decode("utf-8", "replace").strip()
        return f"{self.argv[0]} failed ({describe_exit(code)}){': ' + text if text else ''}"

    def close(self, sup: Supervisor) -> None:
        if self.proc.poll() is None:
            sup.stop(self.proc, grace=0.5)
        self.stderr.close()


def _hand_fd(
    client: QMPClient,
    sup: Supervisor,
    argv: list[str] | None,
    file: IO[bytes],
    *,
    outgoing: bool,
) -> Tool | None:
    """Give QEMU the migration stream's fd (as FD_NAME): the state file itself, or a pipe through
    argv, a compressor on the way out or a decompressor on the way in (returned, to be checked)."""
    if argv is None:
        client.execute("getfd", {"fdname": FD_NAME}, fds=[file.fileno()])
        return None
    r, w = _big_pipe()
    qemu_end, tool_end = (w, r) if outgoing else (r, w)
    role = "compressor" if outgoing else "decompressor"
    err = os.fdopen(os.memfd_create(f"wingen-{role}-stderr"), "w+b")
    try:
        stdin, stdout = (r, file) if outgoing else (file, w)
        proc = sup.spawn(f"{role} {argv[0]}", argv, stdin=stdin, stdout=stdout, stderr=err)
    except BaseException:
        err.close()
        raise
    finally:
        os.close(tool_end)
    tool = Tool(argv, proc, err)
    try:
        client.execute("getfd", {"fdname": FD_NAME}, fds=[qemu_end])
    except BaseException:
        tool.close(sup)
        raise
    finally:
        os.close(qemu_end)  # QEMU holds its own copy now
    return tool


def restore(
    client: QMPClient,
    src: Path,
    compression: str,
    *,
    sup: Supervisor,
    deadline: float,
    tools: Tools = DEFAULT_TOOLS,
    cont: bool = True,
    name: str = "guest",
) -> float:
    """Feed a QEMU started with `-incoming defer` from src, check it loaded, cont.  Seconds."""
    incoming = Incoming.begin(
        client, src, compression, sup=sup, deadline=deadline, tools=tools, name=name
    )
    return incoming.finish(cont=cont)


@dataclass
class Incoming:
    """A revive under way: begun (the stream is flowing into QEMU), then finished (loaded,
    checked, optionally continued).  Several begun one after another load at the same time:
    a stage reviving two VMs waits for the slower, not for both in turn."""

    client: QMPClient
    src: Path
    name: str
    sup: Supervisor
    start: float
    deadline: float
    decomp: Tool | None = None

    @property
    def end(self) -> float:
        return self.start + self.deadline

    @staticmethod
    def begin(
        client: QMPClient,
        src: Path,
        compression: str,
        *,
        sup: Supervisor,
        deadline: float,
        tools: Tools = DEFAULT_TOOLS,
        name: str = "guest",
    ) -> Incoming:
        incoming = Incoming(client, src, name, sup, time.monotonic(), deadline)
        template = compression == "template"
        for p in [src, ram_path(src)] if template else [src]:
            if not p.is_file() or p.stat().st_size == 0:
                raise SnapshotError(f"restore {name}: state file {p} is missing or empty")
        mapped = read_meta(src).get("format", mapped_ram.STREAM) == mapped_ram.FORMAT
        begun = False
        try:
            _set_ignore_shared(client, template)
            if mapped:
                mapped_ram.enable(client)
                client.execute("migrate-incoming", {"uri": mapped_ram.uri(src)})
            else:
                with src.open("rb") as f:  # QEMU or the decompressor holds its own copy
                    incoming.decomp = _hand_fd(client, sup, tools.decompressor(compression), f,
                                               outgoing=False)  # fmt: skip
                client.execute("migrate-incoming", {"uri": f"fd:{FD_NAME}"})
            begun = True
        except QMPError as exc:
            raise incoming.failure(exc) from exc
        finally:
            if not begun:
                incoming.close()
        return incoming

    def finish(self, *, cont: bool = True) -> float:
        """Wait until the state is loaded and checked; cont if asked.  Seconds since begin."""
        name, decomp = self.name, self.decomp
        try:
            pause = 0.001
            while str(self.client.execute("query-status").get("status")) == "inmigrate":
                if time.monotonic() >= self.end:
                    raise SnapshotError(
                        f"restore {name}: deadline: state not loaded after {self.deadline:g} s"
                    )
                if decomp is not None and decomp.proc.poll() not in (None, 0):
                    raise SnapshotError(_corrupt(name, self.src, decomp, decomp.proc.wait()))
                time.sleep(pause)
                pause = min(0.05, pause * 2)
            mig = self.client.execute("query-migrate")
            if mig.get("status") not in (None, "completed"):
                raise SnapshotError(f"restore {name}: incoming migration {mig.get('status')}")
            if decomp is not None:
                code = _wait_proc(decomp.proc, self.end)
                if code != 0:
                    raise SnapshotError(_corrupt(name, self.src, decomp, code))
            loaded = time.monotonic()
            if cont:
                self.client.execute("cont")
        except QMPError as exc:
            raise self.failure(exc) from exc
        finally:
            self.close()
        took = time.monotonic() - self.start
        state = f"running after {took:.2f} s" if cont else "paused"
        log(f"restore {name}: loaded in {loaded - self.start:.2f} s, {state}")
        return took

    def failure(self, exc: QMPError) -> SnapshotError:
        """Why the revive failed.  A corrupt stream makes the decompressor fail and QEMU exit:
        the former is the reason."""
        if not isinstance(exc, QMPDisconnectedError):
            return SnapshotError(f"restore {self.name}: {exc}")
        failed = self.decomp.exited(1.0) if self.decomp is not None else None
        if self.decomp is not None and failed:
            return SnapshotError(_corrupt(self.name, self.src, self.decomp, failed))
        return SnapshotError(
            f"restore {self.name}: QEMU refused the state file {self.src} and exited ({exc}); "
            "see its stderr"
        )

    def close(self) -> None:
        if self.decomp is not None:
            self.decomp.close(self.sup)
            self.decomp = None


def _corrupt(name: str, src: Path, tool: Tool, code: int) -> str:
    return f"restore {name}: state file {src} is corrupt or truncated ({tool.failure(code)})"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
