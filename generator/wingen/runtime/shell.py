"""`wingen shell`: a person's terminal in a revived base, outside any sandbox (stdlib only).

How the terminal reaches the guest: the guest sits on a private LAN with only the controller, and
the controller's second serial port (ttyS1) is a QEMU chardev socket on the host, the one a build
is told `go` through.  Here the host writes `shell ROWS COLS` instead; the revived controller
mounts the shares (the store and the exchange dir, as for a build) and runs ``ssh -tt`` to the
guest with its stdio on ttyS1, the guest's side running the run stage's own guest command: map the
shares, restore the (here empty) build environment, then a login shell in place of a builder.
This module relays the user's terminal, raw, to and from that socket: keys (Ctrl-C too) go as
bytes to the guest's pseudo-terminal.  The session ends when the guest's shell exits: the
controller powers off, the socket closes, the guest is quit, and the Supervisor stops every
process it started, by its id.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import termios
import tty
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .accel import resolve_accel
from .contract import BUILDER, EXIT_FILE, SHELL_START
from .derivation import BuildEnv, Dirs, Record, plan, prepare
from .spec import StageSpec, Step
from .stage import QUIT_BUDGET, Stage, execute, saved_accel
from .supervise import StageError

# What the guest runs in place of a builder (guest-build.sh sources it, after the shares are
# mapped and the build environment is set), its stdin the session's terminal again (the guest
# command runs the build script with stdin from /dev/null).
LOGIN = {"linux": "exec sh -i </dev/tty\n", "windows": "exec /bin/bash --login -i </dev/tty\n"}
EOT = b"\x04"  # Ctrl-D: a piped stdin's end ends the guest's shell


@dataclass(frozen=True)
class ShellDirs(Dirs):
    """A run's dirs, with the exchange dir the user chose."""

    chosen_xchg: Path | None = None

    @property
    def xchg(self) -> Path:
        return self.chosen_xchg or self.work / "xchg"


class ShellStage(Stage):
    """A run stage whose guest command is the user's session: revive, relay, then end."""

    def __init__(self, spec: StageSpec, stdin: int, stdout: int) -> None:
        super().__init__(spec)
        self.stdin = stdin
        self.stdout = stdout

    def _revive(self) -> None:
        super()._revive()
        self.current = "the interactive session"
        self.session()

    def session(self) -> None:
        try:
            cols, rows = os.get_terminal_size(self.stdout)
        except OSError:
            cols, rows = 80, 24
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sock, raw(self.stdin):
            sock.connect(str(self.vms["controller"].signal_path))
            sock.sendall(f"shell {rows} {cols}\n".encode())
            relay(sock, self.stdin, self.stdout)


def relay(sock: socket.socket, stdin: int, stdout: int) -> None:
    """Bytes both ways until the controller closes the port.  What the controller's tty echoed
    before the session (the `shell` line) is dropped; stdin is read only once the session runs."""
    pending = b""
    started = False
    inputs: list[int | socket.socket] = [sock]
    while True:
        ready, _, _ = select.select(inputs, [], [])
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            if not started:
                pending += data
                mark = SHELL_START.encode()
                if mark not in pending:
                    continue
                data = pending.split(mark, 1)[1].lstrip(b"\r\n")
                started = True
                inputs.append(stdin)
            os.write(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 4096)
            sock.sendall(data or EOT)
            if not data:
                inputs.remove(stdin)


@contextlib.contextmanager
def raw(fd: int) -> Iterator[None]:
    """The user's terminal raw for the session (keys go to the guest as typed), then restored."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # keep what was typed ahead
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def shell_spec(rec: Record, dirs: Dirs, accel: str) -> StageSpec:
    """The run stage's VMs and revive; after the session, the controller's end and the guest's
    quit (the build's `signal` step is the session itself)."""
    spec = plan(rec, dirs, accel)
    steps = [
        Step("wait_exit", "controller", QUIT_BUDGET, what="the controller's end"),
        Step("quit", "guest", QUIT_BUDGET),
    ]
    return replace(spec, steps=steps)


def run_shell(
    rec: Record,
    work: Path,
    guest: str,
    *,
    xchg: Path | None = None,
    stdin: int = 0,
    stdout: int = 1,
) -> int:
    """Revive rec's base (a run record) in `work`, open the session; the guest shell's exit
    code (or the stage's failure code)."""
    if rec.stage != "run":
        raise StageError(f"wingen shell needs a run stage's record, not {rec.stage!r}")
    dirs = ShellDirs(work=work, out=None, chosen_xchg=xchg)
    spec = shell_spec(rec, dirs, rec.accel)
    accel = resolve_accel(rec.accel, rec["qemu"], saved_accel(spec))
    spec = replace(spec, accel=accel)
    dirs.xchg.mkdir(parents=True, exist_ok=True)
    prepare(rec, dirs, BuildEnv(env={}, top=work), accel)
    (dirs.control / BUILDER).write_text(LOGIN[guest])
    stage = ShellStage(spec, stdin, stdout)
    code = execute(stage, label="wingen shell")
    if code:
        return code
    try:
        return int((dirs.xchg / EXIT_FILE).read_text().strip())
    except (OSError, ValueError):
        return 1
