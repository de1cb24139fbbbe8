"""A small QMP client: one JSON object per line over a unix socket, a deadline on every read."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]
MAX_EVENTS = 1000


class QMPError(Exception):
    """Base of every QMP failure."""


class QMPTimeoutError(QMPError):
    """No (complete) answer before the deadline."""


class QMPDisconnectedError(QMPError):
    """The peer closed the socket (QEMU exited or crashed)."""


class QMPProtocolError(QMPError):
    """The peer sent something that is not QMP."""


class QMPCommandError(QMPError):
    """QEMU answered a command with an error object."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"{command}: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QMPClient:
    """Talk QMP over a connected stream socket.  Events are queued apart from replies."""

    def __init__(self, sock: socket.socket, *, timeout: float = 10.0) -> None:
        self.sock = sock
        self.timeout = timeout
        self.events: list[JSON] = []
        self.greeting: JSON = {}
        self._buf = b""
        self._next_id = 0

    @classmethod
    def connect(
        cls,
        path: str,
        *,
        deadline: float = 10.0,
        timeout: float = 10.0,
        alive: Callable[[], bool] | None = None,
    ) -> QMPClient:
        """Connect to a unix socket (retrying until it exists), read the greeting, negotiate.
        alive() false (QEMU has exited) ends the wait at once."""
        end = time.monotonic() + deadline
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                if alive is not None and not alive():
                    raise QMPDisconnectedError(
                        f"QEMU exited before its QMP socket {path} was up"
                    ) from exc
                if time.monotonic() >= end:
                    raise QMPTimeoutError(
                        f"QMP socket {path} not ready after {deadline:g} s"
                    ) from exc
                time.sleep(0.005)  # QEMU creates it ~30 ms after exec: keep revive fast
        # QEMU greets before machine init is done and answers only after it (large ROMs,
        # initrds): the whole connect deadline applies to the handshake too.
        client = cls(sock, timeout=max(timeout, end - time.monotonic()))
        try:
            client.handshake()
            client.timeout = timeout
        except BaseException:
            client.close()
            raise
        return client

    def handshake(self) -> None:
        """Read the greeting and leave capabilities-negotiation mode."""
        msg = self._read_message(time.monotonic() + self.timeout)
        if "QMP" not in msg:
            raise QMPProtocolError(f"expected the QMP greeting, got {_short(msg)}")
        self.greeting = msg
        self.execute("qmp_capabilities")

    def execute(
        self,
        command: str,
        arguments: JSON | None = None,
        *,
        timeout: float | None = None,
        fds: list[int] | None = None,
    ) -> Any:
        """Run a command; return its "return" value or raise QMPCommandError."""
        self._next_id += 1
        ident = f"wg{self._next_id}"
        msg: JSON = {"execute": command, "id": ident}
        if arguments:
            msg["arguments"] = arguments
        data = json.dumps(msg).encode() + b"\n"
        try:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.sendall(data)
        except OSError as exc:
            raise QMPDisconnectedError(f"{command}: cannot send ({exc})") from exc
        limit = self.timeout if timeout is None else timeout
        end = time.monotonic() + limit
        while True:
            try:
                reply = self._read_message(end)
            except QMPTimeoutError as exc:
                raise QMPTimeoutError(f"{command}: no reply within {limit:g} s") from exc
            except QMPDisconnectedError as exc:
                raise QMPDisconnectedError(f"{command}: {exc}") from exc
            if "event" in reply:
                self._queue(reply)
                continue
            if reply.get("id") != ident:
                raise QMPProtocolError(f"{command}: reply for another command: {_short(reply)}")
            if "error" in reply:
                err = reply["error"]
                if not isinstance(err, dict):
                    raise QMPProtocolError(f"{command}: malformed error {_short(reply)}")
                raise QMPCommandError(command, str(err.get("class", "?")), str(err.get("desc")))
            if "return" not in reply:
                raise QMPProtocolError(f"{command}: reply without return: {_short(reply)}")
            return reply["return"]

    def wait_event(self, name: str, *, timeout: float) -> JSON:
        """Return (and remove) the first queued or incoming event called name."""
        end = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("event") == name:
                    return self.events.pop(i)
            msg = self._read_message(end)
            if "event" not in msg:
                raise QMPProtocolError(
                    f"unexpected message while waiting for {name}: {_short(msg)}"
                )
            self._queue(msg)

    def wait_closed(self, *, timeout: float) -> None:
        """Read (queueing events) until QEMU closes the socket, i.e. has exited."""
        end = time.monotonic() + timeout
        try:
            while True:
                msg = self._read_message(end)
                if "event" not in msg:
                    raise QMPProtocolError(f"unexpected message while closing: {_short(msg)}")
                self._queue(msg)
        except QMPDisconnectedError:
            return

    def quit(self, *, timeout: float) -> None:
        """QMP quit, then wait until QEMU has closed the socket (QMPTimeoutError if it has not)."""
        end = time.monotonic() + timeout
        try:
            self.execute("quit", timeout=timeout)
        except QMPDisconnectedError:
            return  # gone before it answered
        self.wait_closed(timeout=max(0.1, end - time.monotonic()))

    def _queue(self, event: JSON) -> None:
        self.events.append(event)
        del self.events[:-MAX_EVENTS]  # a long stage must not grow without bound

    def close(self) -> None:
        self.sock.close()

    def _read_message(self, end: float) -> JSON:
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                raise QMPTimeoutError("no complete QMP message before the deadline")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError as exc:
                raise QMPTimeoutError("no complete QMP message before the deadline") from exc
            except OSError as exc:
                raise QMPDisconnectedError(f"connection lost ({exc})") from exc
            if not chunk:
                raise QMPDisconnectedError("QEMU closed the QMP connection")
            self._buf += chunk
            if len(self._buf) > 16 << 20:
                raise QMPProtocolError("QMP message larger than 16 MiB without a newline")
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            msg = json.loads(line)
        except ValueError as exc:
            raise QMPProtocolError(f"not JSON: {line[:80]!r}") from exc
        if not isinstance(msg, dict):
            raise QMPProtocolError(f"not a JSON object: {line[:80]!r}")
        return msg


def _short(msg: JSON) -> str:
    text = json.dumps(msg)
    return text if len(text) <= 200 else text[:197] + "..."
