"""`wingen shell` on the Linux guest, driven through a pseudo-terminal as a person would: the
base the test's own Nix file builds is revived outside the sandbox, the guest sees a tty, a
command runs, Ctrl-C interrupts one, the shell's exit code comes back, nothing is left running."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import E2E, ROOT
from .guest import CONFIG

pytestmark = [pytest.mark.e2e, pytest.mark.nix]


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True
        )
        os.close(slave)
        self.seen = b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, text: bytes, timeout: float) -> float:
        """Seconds until `text` appears in the output (after what was seen so far)."""
        start = time.monotonic()
        while text not in self.seen:
            left = start + timeout - time.monotonic()
            assert left > 0, f"{text!r} not seen in {timeout} s; output:\n{self.text()[-3000:]}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:  # the process closed the terminal
                    assert text in self.seen, f"{text!r} never seen; output:\n{self.text()}"
        return time.monotonic() - start

    def text(self) -> str:
        return self.seen.decode("utf-8", "replace")


def live_mentioning(token: str) -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if token in cmd:
                found.append(cmd)
    return found


def test_shell_in_a_revived_linux_guest(e2e: E2E, tmp_path: Path) -> None:
    built = e2e.build("base")
    assert built.returncode == 0, built.output
    base = str((e2e.dir / "base").resolve())
    config = e2e.dir / "shell.toml"
    config.write_text(CONFIG.format(name=e2e.name))
    xchg = tmp_path / "xchg"
    xchg.mkdir()
    (xchg / "from-host").write_text("hello from the host\n")
    env = {**e2e.env, "PYTHONPATH": str(ROOT / "generator"), "TERM": "xterm"}
    argv = [sys.executable, "-c", "from wingen.cli import main; main()", "shell"]
    argv += ["-c", str(config), "--file", str(e2e.dir / "top.nix"), "--xchg", str(xchg)]
    t0 = time.monotonic()
    term = Terminal(argv, env, e2e.dir)
    try:
        # Typed at once: the command waits in the terminal until the session reads it.
        term.send(b"tty; cat /tmp/xchg/from-host; echo done-$((6*7)) > /tmp/xchg/to-host\n")
        term.expect(b"hello from the host", 120)
        e2e.timings["shell: start to first command (s)"] = time.monotonic() - t0
        # The guest's shell has a terminal (its stdin is /dev/tty: a pty of the SSH session).
        assert b"\r\n/dev/tty\r\n" in term.seen and b"not a tty" not in term.seen
        for _ in range(100):  # the echo runs just after the cat
            if (xchg / "to-host").exists() and (xchg / "to-host").read_text():
                break
            time.sleep(0.1)
        assert (xchg / "to-host").read_text() == "done-42\n"
        term.send(b"sleep 60 && echo slept\n")
        time.sleep(1)
        term.send(b"\x03")  # Ctrl-C, as a byte: the guest's terminal interrupts sleep
        term.send(b"echo after-$((1+1))\n")
        assert term.expect(b"after-2", 20) < 20
        assert b"\r\nslept" not in term.seen  # sleep was interrupted, its && never ran
        term.send(b"exit 3\n")
        term.proc.wait(60)  # the session ends with the guest's shell (its code: not yet passed on)
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
        os.close(term.master)
    assert live_mentioning(base) == []  # no QEMU (nor anything) of the revived base left
    assert not (xchg / "wingen").exists()  # the user's dir holds only what they put there
