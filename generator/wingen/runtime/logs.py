"""Into the build log as it happens: files (serial consoles, the guest's build output) echoed line
by line, rate-limited, and a heartbeat, so that a long stage is never silent (Nix's
max-silent-time, Hydra's maxSilent) and a slow stage can be told from a stuck one."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .contract import failure_reason

POLL = 0.25  # seconds between looks at the files


class Follow:
    """A file followed from its start; complete lines are echoed with a prefix."""

    def __init__(self, path: Path, prefix: str, *, per_second: float = 0.0) -> None:
        self.path = path
        self.prefix = prefix
        self.per_second = per_second  # 0: no limit
        self.pos = 0
        self.partial = b""
        self.allowance = per_second * 5  # a burst of 5 s worth
        self.skipped = 0
        self.last = time.monotonic()

    def lines(self, final: bool = False) -> list[str]:
        """The new complete lines (and on the final call, the unterminated rest)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.pos)
                data = f.read(1 << 20)
        except OSError:
            return []
        self.pos += len(data)
        chunks = (self.partial + data).split(b"\n")
        self.partial = chunks.pop()
        if final and self.partial:
            chunks.append(self.partial)
            self.partial = b""
        self._refill()
        out = []
        for raw in chunks:
            text = raw.decode("utf-8", "replace").replace("\r", "").rstrip()
            if text and self._allowed(final):
                out.append(f"{self.prefix}{text}")
        if self.skipped and (final or self.allowance >= 1):
            out.append(
                f"{self.prefix}({self.skipped} lines not shown: more than "
                f"{self.per_second:g} a second; the whole log is {self.path})"
            )
            self.skipped = 0
        return out

    def _refill(self) -> None:
        now = time.monotonic()
        cap = self.per_second * 5
        self.allowance = min(cap, self.allowance + (now - self.last) * self.per_second)
        self.last = now

    def _allowed(self, final: bool) -> bool:
        if not self.per_second:
            return True
        self._refill()
        if self.allowance >= 1:
            self.allowance -= 1
            return True
        self.skipped += 1
        return False


class Echo:
    """A daemon thread that echoes followed files, and a heartbeat, to the build log."""

    def __init__(
        self,
        heartbeat: Callable[[], str] | None = None,
        every: float = 60.0,
        out: TextIO | None = None,
    ) -> None:
        self.follows: list[Follow] = []
        self.heartbeat = heartbeat
        self.every = every
        self.out = out or sys.stderr
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def follow(self, path: Path, prefix: str, *, per_second: float = 0.0) -> None:
        with self._lock:
            self.follows.append(Follow(path, prefix, per_second=per_second))

    def start(self) -> Echo:
        self._thread = threading.Thread(target=self._run, name="wingen-echo", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        beat = time.monotonic() + self.every
        while not self._stop.wait(POLL):
            self.flush()
            if self.heartbeat is not None and time.monotonic() >= beat:
                beat = time.monotonic() + self.every
                self._print([self.heartbeat()])

    def flush(self, final: bool = False) -> None:
        with self._lock:
            for f in self.follows:
                self._print(f.lines(final))

    def _print(self, lines: list[str]) -> None:
        if lines:
            self.out.write("".join(line + "\n" for line in lines))
            self.out.flush()

    def stop(self) -> None:
        """Echo what is left and stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush(final=True)


class FailureWatch:
    """A serial console read as it grows, for the contract's failure line (contract.FAILED): the
    first one found is kept as the VM's reason."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0
        self.partial = b""
        self.reason: str | None = None

    def check(self, final: bool = False) -> str | None:
        """The reason of the first failure line so far; `final` (the VM has exited) also reads
        an unterminated last line."""
        if self.reason is not None:
            return self.reason
        try:
            with self.path.open("rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return None
        self.pos += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = b"" if final else lines.pop()
        for raw in lines:
            reason = failure_reason(raw.decode("utf-8", "replace"))
            if reason is not None:
                self.reason = reason
                break
        return self.reason
