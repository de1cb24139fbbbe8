"""One QEMU process: its command line, its files (QMP socket, serial log, stderr) and report."""

from __future__ import annotations

import contextlib
import functools
import socket
import subprocess
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .accel import DEFAULT_CPU
from .logs import FailureWatch
from .qmp import QMPClient, QMPError
from .spec import Restore, VMSpec
from .supervise import Supervisor, describe_exit, tail

if TYPE_CHECKING:  # a revive's code, imported where a revive needs it (saved.py says why)
    from .template_ram import TemplateRam

__all__ = ["VM", "Restore", "VMSpec", "opt"]


class VM:
    def __init__(self, spec: VMSpec, *, qemu: str, accel: str, rundir: Path, logdir: Path):
        self.spec = spec
        self.name = spec.name
        self.qemu = qemu
        self.accel = accel
        self.qmp_path = rundir / f"{spec.name}.qmp"
        self.serial_log = logdir / f"wingen-{spec.name}.serial.log"
        self.stderr_log = logdir / f"wingen-{spec.name}.stderr.log"
        self.ram_file = logdir / f"wingen-{spec.name}.ram"  # template mode only
        self.ram_copy = rundir / f"{spec.name}.ram"
        self.signal_path = rundir / f"{spec.name}.signal"  # spec.signal only
        self.proc: subprocess.Popen[bytes] | None = None
        self.qmp: QMPClient | None = None
        self._stderr: IO[bytes] | None = None
        self._signal_socks: list[socket.socket] = []
        self._failures = FailureWatch(self.serial_log)

    def argv(self) -> list[str]:
        s = self.spec
        argv = [self.qemu, "-name", s.name, "-accel", self.accel, "-cpu", self.cpu]
        argv += ["-m", f"{s.memory_mib}M"]
        restore = s.restore
        if restore is not None and restore.compression == "template":
            ram = self.template_ram
            argv += _ram_backend(ram.path, s.memory_mib, share=False, options=ram.options)
        elif s.template:
            argv += _ram_backend(self.ram_file, s.memory_mib, share=True)
        argv += [
            "-display",
            "none",
            "-nodefaults",
            "-qmp",
            f"unix:{opt(self.qmp_path)},server=on,wait=off",
            "-chardev",
            f"file,id=wingen-serial,path={opt(self.serial_log)}",
            "-serial",
            "chardev:wingen-serial",
        ]
        if s.signal:  # ttyS1 in the guest; the runtime connects and writes a line (send_signal)
            argv += [
                "-chardev",
                f"socket,id=wingen-signal,path={opt(self.signal_path)},server=on,wait=off",
                "-serial",
                "chardev:wingen-signal",
            ]
        if s.no_reboot:
            argv.append("-no-reboot")
        if restore is not None:
            argv += ["-incoming", "defer"]
        return argv + device_args(s) + list(s.args)

    @property
    def cpu(self) -> str:
        return cpu_of(self.spec, self.accel)

    @functools.cached_property
    def template_ram(self) -> TemplateRam:
        """How a template revive maps the stored RAM privately (see template_ram.py); planned
        once, for the copy start() may make and the flags argv() writes."""
        from .snapshot import ram_path, read_meta
        from .template_ram import plan_for_qemu

        assert self.spec.restore is not None
        state = self.spec.restore.path
        known = read_meta(state).get("qemu_caps")
        return plan_for_qemu(ram_path(state), self.ram_copy, self.qemu, known)

    def start(self, sup: Supervisor) -> None:
        r = self.spec.restore
        if r is not None and r.compression == "template":
            from .snapshot import ram_path
            from .template_ram import prepare_ram

            if ram_path(r.path).exists():
                prepare_ram(self.template_ram, self.name)
        self.serial_log.unlink(missing_ok=True)
        if self.spec.template and self.spec.restore is None:
            self.ram_file.unlink(missing_ok=True)
        self._stderr = self.stderr_log.open("wb")
        self.proc = sup.spawn(f"QEMU {self.name}", self.argv(), stderr=self._stderr)

    def connect(self, deadline: float) -> QMPClient:
        self.qmp = QMPClient.connect(
            str(self.qmp_path), deadline=deadline, alive=lambda: self.exit_code() is None
        )
        return self.qmp

    def client(self) -> QMPClient:
        if self.qmp is None:
            raise RuntimeError(f"VM {self.name}: not connected")
        return self.qmp

    def send_signal(self, line: str, timeout: float) -> None:
        """Write one line to the VM's second serial port (its `signal` socket).  The connection
        stays open until the VM is closed: QEMU takes bytes only as fast as the guest's UART
        empties, and drops what is left when the writer goes away."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(str(self.signal_path))
            sock.sendall(line.encode() + b"\n")
        except OSError:
            sock.close()
            raise
        self._signal_socks.append(sock)

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def failure(self) -> str | None:
        """The reason of the failure line (contract.FAILED) the VM wrote on its serial console."""
        return self._failures.check(final=self.exit_code() is not None)

    def ended(self, code: int) -> str:
        """How the VM ended: the reason the guest wrote into its failure file or as a failure
        line on its console, if any, else QEMU's exit code ("VM controller failed: ssh deadline:
        …", "VM guest exited (…)")."""
        text = ""
        if self.spec.failure_file:
            with contextlib.suppress(OSError):
                text = Path(self.spec.failure_file).read_text("utf-8", "replace").strip()
        text = text or self.failure() or ""
        if text:
            return f"VM {self.name} failed: {text} (QEMU {describe_exit(code)})"
        return f"VM {self.name} exited ({describe_exit(code)})"

    def status(self) -> str:
        code = self.exit_code()
        if self.proc is None:
            return "not started"
        return "running" if code is None else describe_exit(code)

    def quit(self, sup: Supervisor, budget: float) -> None:
        """Ask QEMU to quit; stop it (SIGTERM, then SIGKILL) if it is still there after budget."""
        if self.exit_code() is None and self.qmp is not None:
            with contextlib.suppress(QMPError):
                self.qmp.quit(timeout=budget)
        if self.proc is not None:
            try:
                self.proc.wait(budget)
            except subprocess.TimeoutExpired:
                sup.stop(self.proc)

    def report(self, lines: int = 20) -> str:
        serial = tail(self.serial_log, lines) or "(no serial output)"
        stderr = tail(self.stderr_log, lines) or "(empty)"
        return (
            f"--- VM {self.name} ({self.status()}): last {lines} serial lines "
            f"[{self.serial_log}] ---\n{serial}\n--- VM {self.name}: QEMU stderr ---\n{stderr}"
        )

    def close(self, sup: Supervisor) -> None:
        for sock in self._signal_socks:
            sock.close()
        self._signal_socks.clear()
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.proc is not None:
            sup.stop(self.proc)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def cpu_of(s: VMSpec, accel: str) -> str:
    """The CPU model the VM gets: its spec's, else the accelerator's default."""
    return s.cpu_model or DEFAULT_CPU[accel]


def device_args(s: VMSpec) -> list[str]:
    """The QEMU flags for a VM's typed fields: the one place they are written."""
    argv = ["-smp", str(s.cpus)]
    if s.machine_type:
        argv += ["-machine", s.machine_type]
    if s.rtc:
        argv += ["-rtc", f"base={opt(s.rtc)},clock=vm"]
    if s.firmware is not None:
        argv += [
            "-drive",
            f"if=pflash,format=raw,readonly=on,file={opt(s.firmware.code)}",
            "-drive",
            f"if=pflash,format=raw,file={opt(s.firmware.vars)}",
        ]
    if s.boot:
        argv += ["-boot", s.boot]
    if s.kernel is not None:
        argv += ["-kernel", s.kernel.kernel]
        if s.kernel.initrd:
            argv += ["-initrd", s.kernel.initrd]
        if s.kernel.append:
            argv += ["-append", s.kernel.append]
    for d in s.drives:
        index = "" if d.index is None else f",index={d.index}"
        if d.media == "cdrom":
            spec = f"if=ide{index},media=cdrom,readonly=on"
        elif d.media == "floppy":
            spec = "if=floppy,format=raw,readonly=on"
        elif d.media == "image":
            spec = f"if={d.interface}{index},format=raw,readonly=on"
        else:
            spec = f"if={d.interface}{index},format=qcow2,cache=unsafe"
        argv += ["-drive", f"file={opt(d.file)},{spec}"]
    for i, n in enumerate(s.nics):
        net = f"wingen-net{i}"
        argv += ["-netdev", f"vde,id={net},sock={opt(n.switch)}"]
        argv += ["-device", f"{n.model},netdev={net},mac={n.mac}"]
    for share in s.shares:
        readonly = ",readonly=on" if share.readonly else ""
        argv += [
            "-virtfs",
            f"local,path={opt(share.path)},security_model=none,mount_tag={share.tag}{readonly}",
        ]
    if s.vga:
        argv += ["-device", "VGA"]
    if s.debug_exit:
        argv += ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
    return argv


def _ram_backend(path: Path, mib: int, *, share: bool, options: str = "") -> list[str]:
    on = "on" if share else "off"
    extra = f",{options}" if options else ""
    return [
        "-object",
        f"memory-backend-file,id=wingen-ram,size={mib}M,mem-path={opt(path)},share={on}{extra}",
        "-machine",
        "memory-backend=wingen-ram",
    ]


def opt(value: object) -> str:
    """A value inside a QEMU -option list: commas are doubled."""
    return str(value).replace(",", ",,")
