"""QMP client protocol edge cases against a scripted server on a socketpair."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from wingen.runtime.qmp import (
    QMPClient,
    QMPCommandError,
    QMPDisconnectedError,
    QMPProtocolError,
    QMPTimeoutError,
)

GREETING = (
    b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\n'
)
EVENT = b'{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}\n'


class Server:
    """Runs a script on the server end: ("send", bytes) / ("expect", command) / ("close",).

    In sent bytes, {id} is replaced by the id of the last expected command.
    """

    def __init__(self, sock: socket.socket, script: list[tuple[Any, ...]]) -> None:
        self.sock = sock
        self.script = script
        self.received: list[dict[str, Any]] = []
        self.fds: list[int] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buf = b""
        last_id = ""
        try:
            for step in self.script:
                if step[0] == "send":
                    self.sock.sendall(step[1].replace(b"{id}", last_id.encode()))
                elif step[0] == "sleep":
                    time.sleep(step[1])
                elif step[0] == "expect":
                    while b"\n" not in buf:
                        data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 4)
                        self.fds += fds
                        if not data:
                            raise AssertionError("client closed")
                        buf += data
                    line, _, buf = buf.partition(b"\n")
                    msg = json.loads(line)
                    self.received.append(msg)
                    assert msg["execute"] == step[1], msg
                    last_id = msg["id"]
                elif step[0] == "close":
                    self.sock.shutdown(socket.SHUT_RDWR)
                    self.sock.close()
                    return
        except BaseException as exc:  # reported by the test
            self.error = exc

    def join(self) -> None:
        self.thread.join(5)
        assert self.error is None, self.error


HANDSHAKE: list[tuple[Any, ...]] = [
    ("send", GREETING),
    ("expect", "qmp_capabilities"),
    ("send", b'{"return": {}, "id": "{id}"}\n'),
]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield a, b
    a.close()
    b.close()


def client_for(
    pair: tuple[socket.socket, socket.socket], script: list[tuple[Any, ...]], timeout: float = 2.0
) -> tuple[QMPClient, Server]:
    server = Server(pair[1], HANDSHAKE + script)
    client = QMPClient(pair[0], timeout=timeout)
    client.handshake()
    return client, server


def test_greeting_and_command(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "query-status"),
            ("send", b'{"return": {"status": "running", "running": true}, "id": "{id}"}\n'),
        ],
    )
    assert client.greeting["QMP"]["version"]["qemu"]["major"] == 7
    assert client.execute("query-status") == {"status": "running", "running": True}
    server.join()
    assert server.received[0] == {"execute": "qmp_capabilities", "id": "wg1"}


def test_arguments_are_sent(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "migrate"),
            ("send", b'{"return": {}, "id": "{id}"}\n'),
        ],
    )
    client.execute("migrate", {"uri": "fd:x"})
    server.join()
    assert server.received[1]["arguments"] == {"uri": "fd:x"}


def test_events_before_reply_are_queued(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "stop"),
            ("send", EVENT + b'{"event": "RESUME", "timestamp": {}}\n'),
            ("send", b'{"return": {}, "id": "{id}"}\n'),
        ],
    )
    assert client.execute("stop") == {}
    assert [e["event"] for e in client.events] == ["STOP", "RESUME"]
    assert client.wait_event("RESUME", timeout=0.1)["event"] == "RESUME"
    assert [e["event"] for e in client.events] == ["STOP"]
    server.join()


def test_wait_event_reads_from_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(pair, [("sleep", 0.1), ("send", EVENT)])
    assert client.wait_event("STOP", timeout=2)["timestamp"]["seconds"] == 1
    server.join()


def test_error_reply_is_typed(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "cont"),
            (
                "send",
                b'{"error": {"class": "GenericError", "desc": "migration in progress"}, '
                b'"id": "{id}"}\n',
            ),
        ],
    )
    with pytest.raises(QMPCommandError) as info:
        client.execute("cont")
    assert info.value.error_class == "GenericError"
    assert info.value.desc == "migration in progress"
    assert info.value.command == "cont"
    server.join()


def test_disconnect_mid_command(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "query-migrate"),
            ("send", b'{"return": {"sta'),
            ("close",),
        ],
    )
    with pytest.raises(QMPDisconnectedError, match="query-migrate"):
        client.execute("query-migrate")
    server.join()


def test_garbage_is_a_protocol_error(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "query-status"),
            ("send", b"\x00\xffnot json at all\n"),
        ],
    )
    with pytest.raises(QMPProtocolError, match="not JSON"):
        client.execute("query-status")
    server.join()


def test_non_object_json_is_a_protocol_error(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(pair, [("expect", "query-status"), ("send", b"[1, 2]\n")])
    with pytest.raises(QMPProtocolError, match="not a JSON object"):
        client.execute("query-status")
    server.join()


def test_reply_for_another_id(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "query-status"),
            ("send", b'{"return": {}, "id": "other"}\n'),
        ],
    )
    with pytest.raises(QMPProtocolError, match="another command"):
        client.execute("query-status")
    server.join()


def test_reply_in_pieces(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "query-status"),
            ("send", b'{"return": {"st'),
            ("sleep", 0.05),
            ("send", b'atus": "paused"}, '),
            ("sleep", 0.05),
            ("send", b'"id": "{id}"}\n'),
        ],
    )
    assert client.execute("query-status") == {"status": "paused"}
    server.join()


def test_two_messages_in_one_chunk(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "stop"),
            ("send", b'{"return": {}, "id": "{id}"}\n' + EVENT),
        ],
    )
    assert client.execute("stop") == {}
    assert client.wait_event("STOP", timeout=0.5)["event"] == "STOP"
    server.join()


def test_no_reply_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(pair, [("expect", "query-status"), ("sleep", 1.0)])
    t0 = time.monotonic()
    with pytest.raises(QMPTimeoutError, match="query-status"):
        client.execute("query-status", timeout=0.3)
    assert 0.25 < time.monotonic() - t0 < 0.9
    server.join()


def test_events_alone_do_not_extend_the_deadline(pair: tuple[socket.socket, socket.socket]) -> None:
    chatter: list[tuple[Any, ...]] = [("send", EVENT), ("sleep", 0.05)] * 10
    client, server = client_for(pair, [("expect", "stop"), *chatter])
    t0 = time.monotonic()
    with pytest.raises(QMPTimeoutError):
        client.execute("stop", timeout=0.2)
    assert time.monotonic() - t0 < 0.4
    server.join()


def test_missing_greeting(pair: tuple[socket.socket, socket.socket]) -> None:
    Server(pair[1], [("send", b'{"return": {}}\n')])
    with pytest.raises(QMPProtocolError, match="greeting"):
        QMPClient(pair[0], timeout=1).handshake()


def test_silent_peer_greeting_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    t0 = time.monotonic()
    with pytest.raises(QMPTimeoutError):
        QMPClient(pair[0], timeout=0.2).handshake()
    assert time.monotonic() - t0 < 0.6


def test_fd_is_passed_with_the_command(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "getfd"),
            ("send", b'{"return": {}, "id": "{id}"}\n'),
        ],
    )
    r, w = os.pipe()
    try:
        client.execute("getfd", {"fdname": "x"}, fds=[w])
        server.join()
        assert len(server.fds) == 1
        os.write(server.fds[0], b"hi")
        assert os.read(r, 2) == b"hi"
    finally:
        for fd in (r, w, *server.fds):
            os.close(fd)


def test_connect_deadline(tmp_path: Any) -> None:
    t0 = time.monotonic()
    with pytest.raises(QMPTimeoutError, match="not ready"):
        QMPClient.connect(str(tmp_path / "missing.sock"), deadline=0.3)
    assert 0.25 < time.monotonic() - t0 < 1.0


def test_connect_over_unix_socket(tmp_path: Any) -> None:
    path = str(tmp_path / "q.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def accept() -> None:
        conn, _ = listener.accept()
        Server(conn, HANDSHAKE).join()
        conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    client = QMPClient.connect(path, deadline=2)
    assert "QMP" in client.greeting
    client.close()
    t.join(2)
    listener.close()


def test_event_queue_is_bounded(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = client_for(
        pair,
        [
            ("expect", "stop"),
            ("send", EVENT * 1005),
            ("send", b'{"return": {}, "id": "{id}"}\n'),
        ],
    )
    assert client.execute("stop") == {}
    assert len(client.events) == 1000
    server.join()
