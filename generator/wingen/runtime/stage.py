"""Run one stage: start the switch and the VMs, revive those with a state, run the steps in
order (each action is one method, looked up in STEP_ACTIONS), tear everything down."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .accel import resolve_accel, scaled
from .logs import Echo
from .qmp import QMPError
from .spec import SCALARS, StageSpec, Step, VMSpec
from .supervise import (
    Interrupted,
    StageError,
    Supervisor,
    describe_exit,
    log,
    signals_blocked,
    tail,
    wait_until,
)
from .vm import VM, cpu_of

QUIT_BUDGET = 10.0  # seconds a QEMU gets to quit after the last step (scaled under TCG)
SERIAL_LINES_PER_SECOND = 20.0  # per VM, into the build log (the whole log stays in the file)


class Stage:
    def __init__(self, spec: StageSpec) -> None:
        self.spec = spec
        self.sup = Supervisor()
        self.vms: dict[str, VM] = {}
        self.accel = "tcg"
        self.rundir: Path | None = None
        self._switch_pipe: int | None = None
        self.switch_log = spec.workdir / "wingen-vde_switch.log"
        self.echo = Echo(heartbeat=self.heartbeat, every=spec.heartbeat)
        self.started = time.monotonic()
        self.step_started = self.started
        self.current = "starting the VMs"
        self.screens: list[str] = []  # lines for the report: where each screenshot went
        self.failure: str | None = None  # why the stage failed, once it has (execute)

    def deadline(self, seconds: float) -> float:
        return scaled(seconds, self.accel, self.spec.tcg_deadline_scale)

    def deadline_text(self, seconds: float) -> str:
        limit = self.deadline(seconds)
        if limit != seconds:
            return f"{limit:g} s ({seconds:g} s x {limit / seconds:g} under TCG)"
        return f"{seconds:g} s"

    def run(self) -> None:
        spec = self.spec
        self.accel = resolve_accel(spec.accel, spec.qemu, saved_accel(spec))
        spec.workdir.mkdir(parents=True, exist_ok=True)
        self.rundir = short_rundir()
        if spec.switch:
            self._start_switch(spec.switch)
        for vs in spec.vms:
            if vs.restore is not None:
                from .saved import check_revivable

                check_revivable(self, vs)
            vm = VM(vs, qemu=spec.qemu, accel=self.accel, rundir=self.rundir, logdir=spec.workdir)
            self.vms[vs.name] = vm
            vm.start(self.sup)
            # Each serial console into the build log, as it comes (a flood is cut short).
            self.echo.follow(vm.serial_log, f"[{vm.name}] ", per_second=SERIAL_LINES_PER_SECOND)
        self.echo.start()
        for vm in self.vms.values():
            try:
                vm.connect(self.deadline(20))
            except QMPError as exc:
                if vm.proc is not None:  # it may be exiting: let its stderr be complete
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        vm.proc.wait(self.deadline(1))
                if vm.exit_code() == 0 and vm.spec.restore is None:
                    # It ran and powered off before its monitor answered (a short guest, a loaded
                    # host): a power-off like any other, for the steps to judge.
                    log(f"VM {vm.name} powered off before its monitor answered")
                    continue
                said = tail(vm.stderr_log, 5) or "no message"
                raise StageError(
                    f"VM {vm.name}: QEMU did not come up ({vm.status()}): {exc}; it said: {said}"
                ) from exc
        for vm in self.vms.values():
            self._check_cpu(vm)
        self._revive()
        total = len(spec.steps)
        for i, step in enumerate(spec.steps, 1):
            t0 = self.step_started = time.monotonic()
            self.current = f"step {i}/{total} {step.describe()}, deadline " + self.deadline_text(
                step.deadline
            )
            log(f"step {i}/{total}: {step.describe()}")
            try:
                STEP_ACTIONS[step.action](self, step)
            except StageError as exc:
                raise StageError(f"step {i}/{total} ({step.describe()}) failed: {exc}") from exc
            log(f"step {i}/{total}: done in {time.monotonic() - t0:.1f} s")
        for vm in self.vms.values():
            vm.quit(self.sup, self.deadline(QUIT_BUDGET))

    def _revive(self) -> None:
        """Load every VM that has a state (saved.py: only such stages import that code)."""
        if any(vm.spec.restore is not None for vm in self.vms.values()):
            from .saved import revive

            revive(self)

    def heartbeat(self) -> str:
        now = time.monotonic()
        return (
            f"wingen-runtime: still running [accel {self.accel}]: {self.current}; "
            f"{_minutes(now - self.step_started)} in this step, {_minutes(now - self.started)} "
            "in all"
        )

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

    def state_meta(self, vm: VMSpec) -> dict[str, Any]:
        """What a save records beside the state and a revive must match (snapshot.check_meta):
        the VM's typed fields that its saved device state depends on (spec.SCALARS says which
        single values do)."""
        return {
            "accel": self.accel,
            **{f.name: getattr(vm, f.name) for f in SCALARS if f.saved},
            "cpu_model": cpu_of(vm, self.accel),
            "firmware": vm.firmware is not None,
            "drives": [f"{d.interface}:{d.media}" for d in vm.drives],
            "nics": [f"{n.model}:{n.mac}" for n in vm.nics],
        }

    def _check_cpu(self, vm: VM) -> None:
        """Refuse a named CPU model this host cannot fully provide (QEMU would quietly drop the
        missing features, and a snapshot would then not be what the model promises)."""
        if vm.cpu in ("host", "max") or vm.qmp is None:
            return
        try:
            models = vm.qmp.execute("query-cpu-definitions")
        except QMPError:
            return  # a QEMU without it: nothing to check with
        for model in models:
            missing = model.get("unavailable-features") or []
            if model.get("name") == vm.cpu and missing:
                raise StageError(
                    f"VM {vm.name}: this host cannot provide CPU model {vm.cpu!r} under "
                    f"{self.accel} (it lacks {', '.join(missing)}); build and revive on hosts that "
                    "have it, or set vm.cpu_model to a model they all provide"
                )

    def abort_reason(self, waited: str | None) -> str | None:
        """Why waiting further is pointless: a VM wrote a failure line, a VM died with an error,
        or every VM has exited."""
        for name, vm in self.vms.items():
            reason = vm.failure()
            if reason is not None:
                return f"VM {name} failed: {reason}"
        codes = {name: vm.exit_code() for name, vm in self.vms.items()}
        for name, code in codes.items():
            if code is not None and code != 0 and name != waited:
                return f"{self.vms[name].ended(code)} while waiting"
        if waited is None and codes and all(c is not None for c in codes.values()):
            return "every VM has exited, nothing can satisfy the wait"
        return None

    def wait(
        self,
        step: Step,
        check: Callable[[], bool],
        missed: str,
        abort: Callable[[], str | None] | None = None,
    ) -> None:
        """Wait for check() within the step's (scaled) deadline, or fail saying what was missed."""
        limit = self.deadline(step.deadline)
        if not wait_until(check, limit, poll=0.1, abort=abort or (lambda: self.abort_reason(None))):
            raise StageError(f"deadline: {missed} within {self.deadline_text(step.deadline)}")

    def wait_file(self, step: Step) -> None:
        path = Path(step.target)
        self.wait(step, path.exists, f"{path} did not appear")

    def wait_tcp(self, step: Step) -> None:
        host, _, port = step.target.rpartition(":")
        self.wait(
            step,
            lambda: _tcp_open(host, int(port)),
            f"nothing accepted connections on {step.target}",
        )

    def wait_serial(self, step: Step) -> None:
        vm = self.vms[step.target]

        def seen() -> bool:
            return serial_has(vm, step.pattern)

        def why() -> str | None:
            code = vm.exit_code()
            if code is not None:  # with the reason the VM wrote, if it wrote one
                return f"{vm.ended(code)}, before it printed {step.pattern!r}"
            return self.abort_reason(vm.name)

        self.wait(step, seen, f"{step.pattern!r} not on {vm.name}'s serial console", abort=why)

    def wait_exit(self, step: Step) -> None:
        vm = self.vms[step.target]
        self.wait(
            step,
            lambda: vm.exit_code() is not None,
            f"VM {vm.name} did not exit",
            abort=lambda: self.abort_reason(vm.name),
        )
        code = vm.exit_code()
        if code:
            raise StageError(vm.ended(code))
        reason = vm.failure()
        if reason is not None:
            raise StageError(f"VM {vm.name} failed: {reason}")
        if step.pattern and not serial_has(vm, step.pattern):
            # A bare power-off is no success: an installer that died powers off too.
            raise StageError(
                f"VM {vm.name} powered off without printing {step.pattern!r}, the sign that "
                f"{step.what or 'it'} succeeded"
            )

    def save(self, step: Step) -> None:
        from .saved import save_vm

        save_vm(self, step)

    def quit(self, step: Step) -> None:
        self.vms[step.target].quit(self.sup, self.deadline(step.deadline))

    def pause(self, step: Step) -> None:
        """Stop a VM's CPUs (QMP stop): two VMs saved together are paused together first, so
        neither runs on while the other's save is written."""
        self.vms[step.target].client().execute("stop", timeout=self.deadline(step.deadline))

    def signal(self, step: Step) -> None:
        vm = self.vms[step.target]
        try:
            vm.send_signal("go", self.deadline(step.deadline))
        except OSError as exc:
            raise StageError(f"VM {vm.name}: cannot write to its signal port ({exc})") from exc

    def capture_screens(self) -> None:
        """At a failure, each running VM's screen as a PNG beside its serial log (QMP
        screendump): Windows shows its setup errors only there."""
        for vm in self.vms.values():
            if vm.exit_code() is not None or vm.qmp is None:
                continue
            path = self.spec.workdir / f"wingen-{vm.name}.screen.png"
            try:
                vm.qmp.execute(
                    "screendump",
                    {"filename": str(path.resolve()), "format": "png"},
                    timeout=self.deadline(5),
                )
            except QMPError as exc:
                self.screens.append(f"VM {vm.name}: no screenshot ({exc})")
                continue
            self.screens.append(f"VM {vm.name}: screen at the failure: {path.resolve()}")

    def report(self) -> str:
        for vm in self.vms.values():  # a QEMU that just closed QMP is exiting: let it finish
            if vm.proc is not None and vm.proc.poll() is None and vm.qmp is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    vm.proc.wait(self.deadline(0.5))
        parts = [vm.report() for vm in self.vms.values()] + self.screens
        switch = tail(self.switch_log, 5) if self.spec.switch else ""
        if switch:
            parts.append(f"--- vde_switch stderr ---\n{switch}")
        return "\n".join(parts)

    def close(self) -> None:
        self.echo.stop()
        for vm in self.vms.values():
            vm.close(self.sup)
        if self._switch_pipe is not None:
            os.close(self._switch_pipe)
            self._switch_pipe = None
        self.sup.close()
        if self.rundir is not None:
            shutil.rmtree(self.rundir, ignore_errors=True)


class GuestCommandError(StageError):
    """The stage ran, but what it ran in the guest failed: exit with the guest's code, and say
    so without the VMs' serial lines (the guest's own output is already in the log)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def execute(stage: Stage, collect: Callable[[], None] | None = None, label: str = "stage") -> int:
    """Run the stage, then collect(); on every path tear everything down.  The one failure
    report: the reason (which step, which deadline), each VM's last serial lines and QEMU's
    stderr, and where the logs are.  Returns the exit code."""
    stage.sup.install_signals()
    started = time.monotonic()
    report = ""
    try:
        try:
            stage.run()
        except (StageError, QMPError, OSError):
            stage.capture_screens()
            raise
        finally:
            with signals_blocked():
                report = stage.report()
                stage.close()
        if collect is not None:
            collect()
    except GuestCommandError as exc:
        stage.failure = str(exc)
        log(f"{label} failed: {exc}")
        return exc.code
    except (StageError, QMPError, OSError) as exc:
        what = f"QMP: {exc}" if isinstance(exc, QMPError) else str(exc)
        stage.failure = what
        # The reason last, on one line: `nix build` shows a failed build's last lines.
        log(f"{report}\n{keep_hint(stage.spec.workdir)}")
        log(
            f"{label} failed after {time.monotonic() - started:.1f} s [accel {stage.accel}]: {what}"
        )
        return 1
    except Interrupted as exc:
        log(f"{label} {exc}; everything was stopped\n{report}")
        return 128 + exc.signum
    finally:
        stage.sup.restore_signals()
    log(f"{label} done in {time.monotonic() - started:.1f} s [accel {stage.accel}]")
    return 0


def keep_hint(workdir: Path) -> str:
    where = workdir.resolve()
    return (
        f"(the serial logs are wingen-*.serial.log in {where}; inside a Nix build, run it "
        "again with --keep-failed to keep them)"
    )


# What each step action does (spec.ACTIONS lists the same names).
STEP_ACTIONS: dict[str, Callable[[Stage, Step], None]] = {
    "wait_file": Stage.wait_file,
    "wait_tcp": Stage.wait_tcp,
    "wait_serial": Stage.wait_serial,
    "wait_exit": Stage.wait_exit,
    "save": Stage.save,
    "quit": Stage.quit,
    "pause": Stage.pause,
    "signal": Stage.signal,
}


def saved_accel(spec: StageSpec) -> str | None:
    """The accelerator the state a VM of this stage revives from was saved under, if known."""
    for vm in spec.vms:
        if vm.restore is not None:
            from .snapshot import read_meta

            accel = read_meta(vm.restore.path).get("accel")
            if isinstance(accel, str):
                return accel
    return None


def host_cpu_flags() -> list[str]:
    """The building host's CPU flags (/proc/cpuinfo), kept beside a saved state."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(line.split(":", 1)[1].split())
    except OSError:
        pass
    return []


def serial_has(vm: VM, pattern: str) -> bool:
    """Whether a line of the VM's serial console matches pattern (re, MULTILINE; CRs dropped)."""
    try:
        text = vm.serial_log.read_text("utf-8", "replace").replace("\r", "")
    except OSError:
        return False
    return re.search(pattern, text, re.MULTILINE) is not None


def _minutes(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


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
