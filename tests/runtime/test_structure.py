"""The runtime package's shape: one step table, CLI help for every option, no dead code, each
rule in one place (no QEMU needed)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import threading
from pathlib import Path

import pytest

from wingen.runtime import spec as spec_module
from wingen.runtime.__main__ import parser
from wingen.runtime.qmp import QMPClient
from wingen.runtime.stage import STEP_ACTIONS
from wingen.runtime.supervise import Supervisor, signals_blocked
from wingen.runtime.vm import VM, VMSpec

UNSCALED_WAIT = r"\.wait\([1-9]|\(\w+, 10\)"  # proc.wait(10), _quit(vm, 10)
RUNTIME = Path(__file__).resolve().parents[2] / "generator" / "wingen" / "runtime"


def test_every_step_action_has_one_handler() -> None:
    assert set(STEP_ACTIONS) == set(spec_module.ACTIONS)


def test_every_cli_option_has_help() -> None:
    top = parser()
    missing = []
    subs = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in subs[0].choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not action.help:
                missing.append(f"{name} {action.dest}")
    assert missing == []


def test_no_pidfile_and_no_extra_pids(tmp_path: Path) -> None:
    vm = VM(VMSpec("guest", 64), qemu="q", accel="tcg", rundir=tmp_path, logdir=tmp_path)
    assert "-pidfile" not in vm.argv()
    assert not hasattr(Supervisor(), "extra_pids")


def test_one_copy_of_each_rule() -> None:
    sources = {p.name: p.read_text() for p in RUNTIME.glob("*.py")}
    where = {
        "def _quit": [n for n, s in sources.items() if "def _quit" in s],
        "pthread_sigmask": [n for n, s in sources.items() if "pthread_sigmask(" in s],
        "COMPRESSIONS =": [n for n, s in sources.items() if "COMPRESSIONS =" in s],
        "not in COMPRESSIONS": [n for n, s in sources.items() if "not in COMPRESSIONS" in s],
        'wait_event("never"': [n for n, s in sources.items() if 'wait_event("never"' in s],
        "TCG_SCALE =": [n for n, s in sources.items() if "TCG_SCALE =" in s],
        # fixed waits are scaled like every deadline (QUIT_BUDGET through Stage.deadline)
        "unscaled wait": [n for n, s in sources.items() if re.search(UNSCALED_WAIT, s)],
    }
    assert where == {
        "def _quit": [],
        "pthread_sigmask": ["supervise.py"],
        "COMPRESSIONS =": ["spec.py"],
        "not in COMPRESSIONS": [],
        'wait_event("never"': [],
        "TCG_SCALE =": ["accel.py"],
        "unscaled wait": [],
    }


def test_signals_blocked_defers_a_signal() -> None:
    got: list[int] = []
    old = signal.signal(signal.SIGHUP, lambda s, _f: got.append(s))
    try:
        with signals_blocked():
            os.kill(os.getpid(), signal.SIGHUP)
            assert got == []
        assert got == [signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, old)


def test_wait_closed_returns_when_the_peer_closes() -> None:
    a, b = socket.socketpair()
    client = QMPClient(a)
    b.sendall(b'{"event": "SHUTDOWN", "timestamp": {"seconds": 1, "microseconds": 0}}\n')
    threading.Timer(0.2, b.close).start()
    client.wait_closed(timeout=5)
    assert [e["event"] for e in client.events] == ["SHUTDOWN"]
    client.close()


def test_quit_waits_for_the_close() -> None:
    a, b = socket.socketpair()
    client = QMPClient(a)

    def qemu() -> None:
        b.recv(4096)
        b.sendall(b'{"return": {}, "id": "wg1"}\n')
        b.close()

    threading.Thread(target=qemu).start()
    client.quit(timeout=5)
    client.close()


def test_stray_serial_log_is_gone() -> None:
    assert not (RUNTIME.parents[2] / "ser2.log").exists()


@pytest.mark.parametrize("module", ["spec", "sparse", "stage", "snapshot", "qmp", "vm"])
def test_each_concern_is_its_own_module(module: str) -> None:
    assert (RUNTIME / f"{module}.py").is_file()
