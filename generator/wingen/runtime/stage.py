"""Run one pipeline stage from a JSON spec (see the package docstring for the format)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .accel import probe_accel
from .qmp import QMPError
from .snapshot import Tools, check_meta, restore, save
from .supervise import (
    Interrupted,
    StageError,
    Supervisor,
    describe_exit,
    log,
    scaled,
    tail,
    wait_until,
)
from .vm import COMPRESSIONS, VM, Restore, VMSpec

ACTIONS = ("wait_file", "wait_tcp", "wait_serial", "wait_exit", "save", "quit")
STEP_KEYS = {*ACTIONS, "deadline", "what", "to", "compression", "pattern", "fsync"}
DEFAULT_DEADLINE = {
    "wait_file": 600.0,
    "wait_tcp": 600.0,
    "wait_serial": 600.0,
    "wait_exit": 3600.0,
    "save": 600.0,
    "quit": 10.0,
}


class SpecError(Exception):
    """The spec is malformed: str() is one line naming field, value and fix."""


@dataclass(frozen=True)
class StageSpec:
    accel: str
    tcg_deadline_scale: float
    qemu: str
    tools: Tools
    vde_switch: str
    switch: str | None
    workdir: Path
    vms: list[VMSpec]
    steps: list[dict[str, Any]]


def _get(
    d: dict[str, Any],
    key: str,
    typ: type | tuple[type, ...],
    where: str,
    default: Any = ...,
    fix: str = "",
) -> Any:
    if key not in d:
        if default is ...:
            raise SpecError(f"{where}.{key}: missing; {fix or 'add it'}")
        return default
    value = d[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise SpecError(f"{where}.{key}: {value!r} has the wrong type; {fix or 'fix its type'}")
    return value


def parse_spec(raw: Any) -> StageSpec:
    if not isinstance(raw, dict):
        raise SpecError('spec: not a JSON object; the spec is {"qemu": ..., "vms": [...], ...}')
    known = {
        "accel",
        "tcg_deadline_scale",
        "qemu",
        "zstd",
        "gzip",
        "zstd_level",
        "vde_switch",
        "switch",
        "workdir",
        "vms",
        "steps",
    }
    for key in raw:
        if key not in known:
            raise SpecError(f"spec.{key}: unknown field; use one of {sorted(known)}")
    accel = _get(raw, "accel", str, "spec", "auto")
    if accel not in ("auto", "kvm", "tcg"):
        raise SpecError(f"spec.accel: {accel!r} is not allowed; use auto, kvm or tcg")
    scale = float(_get(raw, "tcg_deadline_scale", (int, float), "spec", 3.0))
    if scale <= 0:
        raise SpecError(f"spec.tcg_deadline_scale: {scale} must be > 0")
    vms = [_parse_vm(v, i) for i, v in enumerate(_get(raw, "vms", list, "spec"))]
    names = [vm.name for vm in vms]
    if len(set(names)) != len(names):
        raise SpecError(f"spec.vms: duplicate VM names in {names}; give each VM its own name")
    steps = [_parse_step(s, i, names) for i, s in enumerate(_get(raw, "steps", list, "spec"))]
    return StageSpec(
        accel=accel,
        tcg_deadline_scale=scale,
        qemu=_get(raw, "qemu", str, "spec", "qemu-system-x86_64"),
        tools=Tools(
            zstd=_get(raw, "zstd", str, "spec", "zstd"),
            gzip=_get(raw, "gzip", str, "spec", "gzip"),
            zstd_level=_get(raw, "zstd_level", int, "spec", 2),
        ),
        vde_switch=_get(raw, "vde_switch", str, "spec", "vde_switch"),
        switch=_get(raw, "switch", str, "spec", None),
        workdir=Path(_get(raw, "workdir", str, "spec", ".")),
        vms=vms,
        steps=steps,
    )


def _parse_vm(raw: Any, i: int) -> VMSpec:
    where = f"spec.vms[{i}]"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: not an object; give name, memory_mib and args")
    known = {"name", "memory_mib", "args", "template", "restore", "restore_deadline", "no_reboot"}
    for key in raw:
        if key not in known:
            raise SpecError(f"{where}.{key}: unknown field; use one of {sorted(known)}")
    name = _get(raw, "name", str, where)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", name):
        raise SpecError(f"{where}.name: {name!r} is not allowed; use letters, digits, _ and -")
    mem = _get(raw, "memory_mib", int, where)
    if mem < 16:
        raise SpecError(f"{where}.memory_mib: {mem} is too small; use at least 16")
    args = _get(raw, "args", list, where, [])
    if not all(isinstance(a, str) for a in args):
        raise SpecError(f"{where}.args: every argument must be a string")
    rest = None
    if "restore" in raw:
        r = _get(raw, "restore", dict, where)
        comp = _get(r, "compression", str, f"{where}.restore", "zstd")
        if comp not in COMPRESSIONS:
            raise SpecError(
                f"{where}.restore.compression: {comp!r} is not allowed; "
                f"use one of {', '.join(COMPRESSIONS)}"
            )
        rest = Restore(Path(_get(r, "from", str, f"{where}.restore")), comp)
    return VMSpec(
        name=name,
        memory_mib=mem,
        args=list(args),
        template=_get(raw, "template", bool, where, False),
        restore=rest,
        restore_deadline=float(_get(raw, "restore_deadline", (int, float), where, 120.0)),
        no_reboot=_get(raw, "no_reboot", bool, where, True),
    )


def _parse_step(raw: Any, i: int, names: list[str]) -> dict[str, Any]:
    where = f"spec.steps[{i}]"
    if not isinstance(raw, dict):
        raise SpecError(f'{where}: not an object; use e.g. {{"wait_exit": "guest"}}')
    actions = [k for k in raw if k in ACTIONS]
    if len(actions) != 1:
        raise SpecError(f"{where}: needs exactly one of {', '.join(ACTIONS)}; got {sorted(raw)}")
    for key in raw:
        if key not in STEP_KEYS:
            raise SpecError(f"{where}.{key}: unknown field; use one of {sorted(STEP_KEYS)}")
    action = actions[0]
    target = _get(raw, action, str, where)
    if action == "wait_tcp" and not re.fullmatch(r"[^:\s]+:\d{1,5}", target):
        raise SpecError(
            f'{where}.wait_tcp: {target!r} is not HOST:PORT; use e.g. "127.0.0.1:10022"'
        )
    if action not in ("wait_file", "wait_tcp") and target not in names:
        raise SpecError(f"{where}.{action}: no VM named {target!r}; VMs are {names}")
    step = dict(raw)
    step["action"] = action
    step["deadline"] = float(_get(raw, "deadline", (int, float), where, DEFAULT_DEADLINE[action]))
    if action == "save":
        _get(raw, "to", str, where)
        comp = _get(raw, "compression", str, where, "zstd")
        if comp not in COMPRESSIONS:
            raise SpecError(
                f"{where}.compression: {comp!r} is not allowed; "
                f"use one of {', '.join(COMPRESSIONS)}"
            )
        step["compression"] = comp
    if action == "wait_serial":
        pattern = _get(raw, "pattern", str, where)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SpecError(
                f"{where}.pattern: {pattern!r} is not a regular expression ({exc})"
            ) from exc
    return step


def _describe(step: dict[str, Any]) -> str:
    text = f"{step['action']} {step[step['action']]}"
    return f"{text} ({step['what']})" if step.get("what") else text


class Stage:
    def __init__(self, spec: StageSpec) -> None:
        self.spec = spec
        self.sup = Supervisor()
        self.vms: dict[str, VM] = {}
        self.accel = "tcg"
        self.rundir: Path | None = None
        self._switch_pipe: int | None = None
        self.switch_log = spec.workdir / "wingen-vde_switch.log"

    def deadline(self, seconds: float) -> float:
        return scaled(seconds, self.accel, self.spec.tcg_deadline_scale)

    def deadline_text(self, seconds: float) -> str:
        if self.accel == "tcg" and self.spec.tcg_deadline_scale != 1:
            return (
                f"{self.deadline(seconds):g} s ({seconds:g} s x "
                f"{self.spec.tcg_deadline_scale:g} under TCG)"
            )
        return f"{seconds:g} s"

    def run(self) -> None:
        spec = self.spec
        self.accel = probe_accel(spec.qemu) if spec.accel == "auto" else spec.accel
        spec.workdir.mkdir(parents=True, exist_ok=True)
        self.rundir = short_rundir()
        if spec.switch:
            self._start_switch(spec.switch)
        for vs in spec.vms:
            if vs.restore is not None:
                check_meta(
                    vs.restore.path,
                    accel=self.accel,
                    memory_mib=vs.memory_mib,
                    compression=vs.restore.compression,
                )
            vm = VM(vs, qemu=spec.qemu, accel=self.accel, rundir=self.rundir, logdir=spec.workdir)
            self.vms[vs.name] = vm
            vm.start(self.sup)
        for vm in self.vms.values():
            try:
                vm.connect(self.deadline(20))
            except QMPError as exc:
                raise StageError(
                    f"VM {vm.name}: QEMU did not come up ({vm.status()}): {exc}"
                ) from exc
        for vm in self.vms.values():
            if vm.spec.restore is not None:
                r = vm.spec.restore
                restore(
                    vm.client(),
                    r.path,
                    r.compression,
                    sup=self.sup,
                    tools=spec.tools,
                    deadline=self.deadline(vm.spec.restore_deadline),
                    name=vm.name,
                )
        for i, step in enumerate(spec.steps):
            t0 = time.monotonic()
            log(f"step {i + 1}/{len(spec.steps)}: {_describe(step)}")
            try:
                self.run_step(step)
            except StageError as exc:
                raise StageError(
                    f"step {i + 1}/{len(spec.steps)} ({_describe(step)}) failed: {exc}"
                ) from exc
            log(f"step {i + 1}/{len(spec.steps)}: done in {time.monotonic() - t0:.1f} s")
        for vm in self.vms.values():
            if vm.exit_code() is None:
                self._quit(vm, 10)

    def _start_switch(self, sock: str) -> None:
        # No -d: the switch reads stdin, so it exits by itself when our pipe end closes,
        # even if this process is SIGKILLed. --dirmode 0700: its default ctl dir mode is
        # setgid, which Nix builds forbid (even with the sandbox off).
        r, w = os.pipe()
        argv = [self.spec.vde_switch, "-s", sock, "--dirmode", "0700"]
        try:
            with self.switch_log.open("wb") as err:
                proc = self.sup.spawn("vde_switch", argv, stdin=r, stderr=err)
        finally:
            os.close(r)
        self._switch_pipe = w
        ctl = Path(sock) / "ctl"
        if not wait_until(ctl.exists, self.deadline(10), abort=lambda: _exited("vde_switch", proc)):
            raise StageError(
                f"vde_switch: {ctl} did not appear within {self.deadline(10):g} s "
                f"({tail(self.switch_log, 5) or 'no message'})"
            )

    def abort_reason(self, waited: str | None) -> str | None:
        """Why waiting further is pointless: a VM died with an error, or every VM has exited."""
        codes = {name: vm.exit_code() for name, vm in self.vms.items()}
        for name, code in codes.items():
            if code is not None and code != 0 and name != waited:
                return f"VM {name} exited ({describe_exit(code)}) while waiting"
        if waited is None and codes and all(c is not None for c in codes.values()):
            return "every VM has exited, nothing can satisfy the wait"
        return None

    def run_step(self, step: dict[str, Any]) -> None:
        action = step["action"]
        target = step[action]
        limit = self.deadline(step["deadline"])
        if action == "wait_file":
            path = Path(target)
            if not wait_until(path.exists, limit, poll=0.1, abort=lambda: self.abort_reason(None)):
                raise StageError(
                    f"deadline: {path} did not appear within {self.deadline_text(step['deadline'])}"
                )
            return
        if action == "wait_tcp":
            host, _, port = target.rpartition(":")
            if not wait_until(
                lambda: _tcp_open(host, int(port)),
                limit,
                poll=0.2,
                abort=lambda: self.abort_reason(None),
            ):
                raise StageError(
                    f"deadline: nothing accepted connections on {target} within "
                    f"{self.deadline_text(step['deadline'])}"
                )
            return
        vm = self.vms[target]
        if action == "wait_serial":
            rx = re.compile(step["pattern"])

            def seen() -> bool:
                try:
                    return rx.search(vm.serial_log.read_text("utf-8", "replace")) is not None
                except OSError:
                    return False

            def why() -> str | None:
                code = vm.exit_code()
                if code is not None:
                    return f"VM {vm.name} exited ({describe_exit(code)}) before it printed it"
                return self.abort_reason(target)

            if not wait_until(seen, limit, poll=0.1, abort=why):
                raise StageError(
                    f"deadline: {step['pattern']!r} not on {vm.name}'s serial "
                    f"console within {self.deadline_text(step['deadline'])}"
                )
        elif action == "wait_exit":
            if not wait_until(
                lambda: vm.exit_code() is not None,
                limit,
                poll=0.1,
                abort=lambda: self.abort_reason(target),
            ):
                raise StageError(
                    f"deadline: VM {vm.name} still running after "
                    f"{self.deadline_text(step['deadline'])}"
                )
            code = vm.exit_code()
            if code != 0:
                raise StageError(f"VM {vm.name} ended with {describe_exit(code or 0)}")
        elif action == "save":
            if vm.exit_code() is not None:
                raise StageError(f"VM {vm.name} is not running ({vm.status()})")
            save(
                vm.client(),
                Path(step["to"]),
                step["compression"],
                sup=self.sup,
                deadline=limit,
                tools=self.spec.tools,
                ram_file=vm.ram_file if vm.spec.template else None,
                name=vm.name,
                meta={"accel": self.accel, "memory_mib": vm.spec.memory_mib},
                fsync=bool(step.get("fsync", False)),
            )
            if vm.proc is not None:
                try:
                    vm.proc.wait(10)
                except subprocess.TimeoutExpired as exc:
                    raise StageError(
                        f"VM {vm.name}: QEMU still running 10 s after the save and quit"
                    ) from exc
        elif action == "quit":
            self._quit(vm, limit)

    def _quit(self, vm: VM, limit: float) -> None:
        if vm.exit_code() is None and vm.qmp is not None:
            with contextlib.suppress(QMPError):
                vm.qmp.execute("quit", timeout=limit)
        if vm.proc is not None:
            try:
                vm.proc.wait(limit)
            except subprocess.TimeoutExpired:
                self.sup.stop(vm.proc)

    def report(self) -> str:
        for vm in self.vms.values():  # a QEMU that just closed QMP is exiting: let it finish
            if vm.proc is not None and vm.proc.poll() is None and vm.qmp is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    vm.proc.wait(0.5)
        parts = [vm.report() for vm in self.vms.values()]
        switch = tail(self.switch_log, 5) if self.spec.switch else ""
        if switch:
            parts.append(f"--- vde_switch stderr ---\n{switch}")
        return "\n".join(parts)

    def close(self) -> None:
        for vm in self.vms.values():
            vm.close(self.sup)
        if self._switch_pipe is not None:
            os.close(self._switch_pipe)
            self._switch_pipe = None
        self.sup.close()
        if self.rundir is not None:
            shutil.rmtree(self.rundir, ignore_errors=True)


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def short_rundir() -> Path:
    """A private directory for QMP sockets whose paths fit a unix socket (108 bytes)."""
    for parent in (None, "/tmp", "/dev/shm"):
        if parent is not None and not os.access(parent, os.W_OK):
            continue
        d = Path(tempfile.mkdtemp(prefix="wgrt-", dir=parent))
        if len(str(d)) <= 70:
            return d
        d.rmdir()
    raise StageError(
        "no writable directory with a short enough path for QMP sockets (TMPDIR, /tmp, /dev/shm)"
    )


def _exited(name: str, proc: subprocess.Popen[bytes]) -> str | None:
    code = proc.poll()
    return None if code is None else f"{name} exited ({describe_exit(code)})"


def run_stage(spec_path: Path) -> int:
    try:
        spec = parse_spec(json.loads(spec_path.read_text()))
    except (OSError, ValueError) as exc:
        print(
            f"wingen-runtime: spec {spec_path}: cannot read ({exc}); pass a JSON stage spec",
            file=sys.stderr,
        )
        return 2
    except SpecError as exc:
        print(f"wingen-runtime: {exc}", file=sys.stderr)
        return 2
    stage = Stage(spec)
    stage.sup.install_signals()
    started = time.monotonic()
    try:
        try:
            stage.run()
        finally:
            # Blocks the signals while tearing down so a second SIGTERM cannot cut it short.
            old = signal.pthread_sigmask(
                signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
            )
            try:
                report = stage.report()
                stage.close()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
    except StageError as exc:
        print(
            f"wingen-runtime: stage failed after {time.monotonic() - started:.1f} s "
            f"[accel {stage.accel}]: {exc}\n{report}",
            file=sys.stderr,
        )
        return 1
    except QMPError as exc:
        print(f"wingen-runtime: stage failed: QMP: {exc}\n{report}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. no space left for the state file
        print(f"wingen-runtime: stage failed: {exc}\n{report}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"wingen-runtime: stage {exc}; everything was stopped\n{report}", file=sys.stderr)
        return 128 + exc.signum
    finally:
        stage.sup.restore_signals()
    log(f"stage done in {time.monotonic() - started:.1f} s [accel {stage.accel}]")
    return 0
