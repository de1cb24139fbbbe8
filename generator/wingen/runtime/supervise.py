"""Processes, deadlines and teardown: whatever a stage starts is stopped on every exit path."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
TERMINATING = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


class StageError(Exception):
    """A stage failed; str() is the one-paragraph reason."""


class Interrupted(BaseException):
    """A termination signal arrived; unwinding tears everything down."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def log(msg: str) -> None:
    print(f"wingen-runtime: {msg}", file=sys.stderr, flush=True)


def _child_setup() -> None:
    # Runs in the child between fork and exec: die with the runtime even if it is SIGKILLed.
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Supervisor:
    """Starts children in their own process groups and kills them all on close()."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._old_handlers: dict[int, Any] = {}

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stderr: int | IO[Any] | None = subprocess.DEVNULL,
        cwd: str | None = None,
    ) -> subprocess.Popen[bytes]:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_child_setup,
            )
        except OSError as exc:
            raise StageError(f"cannot start {name} ({argv[0]}): {exc}") from exc
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 3.0) -> int:
        """SIGTERM the process group, SIGKILL after grace seconds; return the exit code."""
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        # Kill the whole group even if the leader is gone (helpers it started).
        _signal_group(proc.pid, signal.SIGKILL)
        return proc.wait()

    def close(self) -> None:
        for _name, proc in reversed(self.procs):
            self.stop(proc, grace=2.0)

    def install_signals(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            raise Interrupted(signum)

        for sig in TERMINATING:
            self._old_handlers[sig] = signal.signal(sig, handler)

    def restore_signals(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *_exc: object) -> None:
        with signals_blocked():
            self.close()
        self.restore_signals()


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Hold termination signals back (they arrive after): a second SIGTERM cannot cut a
    teardown short."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, TERMINATING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_until(
    check: Callable[[], bool],
    deadline: float,
    *,
    poll: float = 0.05,
    abort: Callable[[], str | None] | None = None,
) -> bool:
    """Poll check() until true (return True) or deadline seconds pass (return False).

    abort() may return a reason to stop waiting early; it is raised as StageError.
    """
    end = time.monotonic() + deadline
    while True:
        if check():
            return True
        if abort is not None:
            reason = abort()
            if reason:
                raise StageError(reason)
        if time.monotonic() >= end:
            return False
        time.sleep(min(poll, max(0.0, end - time.monotonic())))


def tail(path: Path, lines: int = 20, max_bytes: int = 64 << 10) -> str:
    """The last lines of a (log) file, decoded leniently; '' if it does not exist."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:])


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
