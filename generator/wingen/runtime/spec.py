"""The stage spec (JSON, see the package docstring): parsed whole into typed records, or refused
with one line naming the field, the value and the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPRESSIONS = ("zstd", "gzip", "none", "template")
ACCELS = ("auto", "kvm", "tcg")
INTERFACES = ("virtio", "ide", "floppy")
MEDIA = ("disk", "cdrom", "floppy", "image")


@dataclass(frozen=True)
class Scalar:
    """A VM field that is one value. This table is its one definition: parse_vm checks it, the
    rendered Nix takes vmRecord's arguments and the guest's settings from it (render.py), the
    config takes its pattern (config.py), a revive checks it against the save (Stage.state_meta).
    Adding a QEMU-facing field: a row here, its VMSpec field, its flag in vm.py, its [vm]
    setting in config.py, the README's line."""

    name: str
    kind: type[Any]  # int, float, bool or str (JSON)
    default: Any  # None: required
    pattern: str = ""  # a string's whole value matches it (an empty string: the default)
    fix: str = ""  # what a refusal says to do
    bounds: tuple[int, int] | None = None  # an int's range
    config: str = ""  # the config's [vm] setting the guest's value comes from
    record: bool = False  # the rendered Nix may set it (vmRecord's arguments)
    saved: bool = False  # a saved state depends on it: a revive must match the save


CPU_MODEL = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
MACHINE_TYPE = r"[a-z0-9][a-z0-9_.-]{0,63}"
SCALARS = (
    Scalar("memory_mib", int, None, bounds=(16, 1 << 20), config="memory_mib", record=True,
           saved=True),
    Scalar("cpus", int, 1, bounds=(1, 256), config="cpus", record=True, saved=True),
    # Saved as the model it resolves to (vm.cpu_of): the default depends on the accelerator.
    Scalar("cpu_model", str, "", pattern=CPU_MODEL, fix="use one `qemu-system-x86_64 -cpu help` "
           "lists, e.g. Nehalem-v1", config="cpu_model", record=True),
    Scalar("machine_type", str, "", pattern=MACHINE_TYPE, fix="use one `qemu-system-x86_64 "
           "-machine help` lists, e.g. pc-q35-9.2", config="machine_type", record=True,
           saved=True),
    Scalar("rtc", str, "", config="rtc_base", record=True),  # -rtc base=…,clock=vm
    Scalar("boot", str, "", record=True),  # -boot …
    Scalar("no_reboot", bool, True, record=True),
    # The guest can end QEMU with a code (isa-debug-exit, port 0xf4).
    Scalar("debug_exit", bool, False, record=True),
    # A display (Windows needs one; a failing stage saves a screenshot of it).
    Scalar("vga", bool, False, record=True),
    # A second serial port whose host end is a socket the runtime writes to (Stage.signal):
    # how a revived controller learns to go on.
    Scalar("signal", bool, False, record=True),
    # Set by the runtime: RAM in a share=on file so a template-mode save is possible; how long
    # a revive may take; where the guest writes why it failed (the report shows it).
    Scalar("template", bool, False),
    Scalar("restore_deadline", float, 120.0),
    Scalar("failure_file", str, ""),
)  # fmt: skip
SCALAR = {s.name: s for s in SCALARS}
# The VM fields that are not one value (each parsed by its own function below).
STRUCTURED = ("args", "restore", "firmware", "drives", "nics", "kernel", "shares")
VM_KEYS = {"name", *SCALAR, *STRUCTURED}
DEFAULT_DEADLINE = {
    "wait_file": 600.0,
    "wait_tcp": 600.0,
    "wait_serial": 600.0,
    "wait_exit": 3600.0,
    "save": 600.0,
    "quit": 10.0,
    "pause": 10.0,
    "signal": 10.0,
}
ACTIONS = tuple(DEFAULT_DEADLINE)
STEP_KEYS = {*ACTIONS, "deadline", "what", "to", "compression", "pattern", "fsync"}


class SpecError(Exception):
    """The spec is malformed: str() is one line naming field, value and fix."""


@dataclass(frozen=True)
class Tools:
    """The (de)compressors a save or revive pipes the migration stream through."""

    zstd: str = "zstd"
    gzip: str = "gzip"
    zstd_level: int = 2  # -2 -T0: ~5% smaller than gzip -6 here, 25% less CPU than -3

    def compressor(self, compression: str) -> list[str] | None:
        if compression == "zstd":
            return [self.zstd, f"-{self.zstd_level}", "-T0", "-q", "-c"]
        if compression == "gzip":
            return [self.gzip, "-c"]  # the seed's choice, level 6
        return None

    def decompressor(self, compression: str) -> list[str] | None:
        if compression == "zstd":
            return [self.zstd, "-d", "-q", "-c"]
        if compression == "gzip":
            return [self.gzip, "-d", "-c"]
        return None


@dataclass(frozen=True)
class Restore:
    path: Path
    compression: str


@dataclass(frozen=True)
class Firmware:
    code: str  # UEFI code, read-only
    vars: str  # this VM's own (writable) variable store


@dataclass(frozen=True)
class Drive:
    file: str
    interface: str = "virtio"  # one of INTERFACES
    # disk (qcow2, written) | cdrom (read-only) | floppy (raw, read-only) | image (raw disk,
    # read-only: the controller's root image)
    media: str = "disk"
    index: int | None = None


@dataclass(frozen=True)
class Nic:
    mac: str
    model: str = "virtio-net-pci"
    switch: str = ""  # the vde_switch socket; default: the stage's switch


@dataclass(frozen=True)
class Kernel:
    kernel: str
    initrd: str = ""
    append: str = ""


@dataclass(frozen=True)
class Share:
    tag: str  # the 9p mount tag
    path: str
    readonly: bool = False  # QEMU refuses the guest's writes (the store: issue 19)


@dataclass(frozen=True)
class VMSpec:
    """One VM: typed fields the runtime turns into QEMU flags (vm.py), plus raw args."""

    name: str
    memory_mib: int
    args: list[str] = field(default_factory=list)
    template: bool = False
    restore: Restore | None = None
    restore_deadline: float = 120.0
    no_reboot: bool = True
    cpus: int = 1
    cpu_model: str = ""  # default accel.DEFAULT_CPU (host or max)
    machine_type: str = ""  # -machine; default QEMU's own (pc)
    rtc: str = ""
    firmware: Firmware | None = None
    drives: list[Drive] = field(default_factory=list)
    nics: list[Nic] = field(default_factory=list)
    kernel: Kernel | None = None
    shares: list[Share] = field(default_factory=list)
    boot: str = ""
    debug_exit: bool = False
    vga: bool = False
    failure_file: str = ""
    signal: bool = False


@dataclass(frozen=True)
class Step:
    action: str  # one of ACTIONS
    target: str  # a VM name, a path (wait_file) or HOST:PORT (wait_tcp)
    deadline: float  # seconds, before TCG scaling
    what: str = ""  # for messages only
    pattern: str = ""  # wait_serial; wait_exit: a line required before the exit
    to: str = ""  # save
    compression: str = "zstd"  # save
    fsync: bool = False  # save

    def describe(self) -> str:
        text = f"{self.action} {self.target}"
        return f"{text} ({self.what})" if self.what else text


@dataclass(frozen=True)
class StageSpec:
    accel: str
    tcg_deadline_scale: float | None  # None: the runtime's own factor (accel.TCG_SCALE)
    qemu: str
    tools: Tools
    vde_switch: str
    switch: str | None
    workdir: Path
    vms: list[VMSpec]
    steps: list[Step]
    heartbeat: float = 60.0  # seconds between "still running" lines in the build log


def get(
    d: dict[str, Any],
    key: str,
    typ: type | tuple[type, ...],
    where: str,
    default: Any = ...,
    fix: str = "",
) -> Any:
    """d[key] checked against typ (a bool is never an int here), or default if absent."""
    if key not in d:
        if default is ...:
            raise SpecError(f"{where}.{key}: missing; {fix or 'add it'}")
        return default
    value = d[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise SpecError(f"{where}.{key}: {value!r} has the wrong type; {fix or 'fix its type'}")
    return value


def only_known(d: dict[str, Any], known: set[str], where: str) -> None:
    for key in d:
        if key not in known:
            raise SpecError(f"{where}.{key}: unknown field; use one of {sorted(known)}")


def choice(d: dict[str, Any], key: str, allowed: tuple[str, ...], where: str, default: str) -> str:
    value: str = get(d, key, str, where, default)
    if value not in allowed:
        raise SpecError(f"{where}.{key}: {value!r} is not allowed; use one of {', '.join(allowed)}")
    return value


def parse_spec(raw: Any) -> StageSpec:
    if not isinstance(raw, dict):
        raise SpecError('spec: not a JSON object; the spec is {"qemu": ..., "vms": [...], ...}')
    only_known(
        raw,
        {
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
            "heartbeat",
        },
        "spec",
    )
    accel = choice(raw, "accel", ACCELS, "spec", "auto")
    scale = get(raw, "tcg_deadline_scale", (int, float), "spec", None)
    if scale is not None and scale <= 0:
        raise SpecError(f"spec.tcg_deadline_scale: {scale} must be > 0")
    switch = get(raw, "switch", str, "spec", None)
    vms = [
        parse_vm(v, f"spec.vms[{i}]", switch) for i, v in enumerate(get(raw, "vms", list, "spec"))
    ]
    names = [vm.name for vm in vms]
    if len(set(names)) != len(names):
        raise SpecError(f"spec.vms: duplicate VM names in {names}; give each VM its own name")
    steps = [parse_step(s, i, names) for i, s in enumerate(get(raw, "steps", list, "spec"))]
    return StageSpec(
        accel=accel,
        tcg_deadline_scale=None if scale is None else float(scale),
        qemu=get(raw, "qemu", str, "spec", "qemu-system-x86_64"),
        tools=Tools(
            zstd=get(raw, "zstd", str, "spec", "zstd"),
            gzip=get(raw, "gzip", str, "spec", "gzip"),
            zstd_level=get(raw, "zstd_level", int, "spec", 2),
        ),
        vde_switch=get(raw, "vde_switch", str, "spec", "vde_switch"),
        switch=switch,
        workdir=Path(get(raw, "workdir", str, "spec", ".")),
        vms=vms,
        steps=steps,
        heartbeat=float(get(raw, "heartbeat", (int, float), "spec", 60.0)),
    )


def parse_vm(raw: Any, where: str, switch: str | None = None) -> VMSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: not an object; give name, memory_mib and args")
    only_known(raw, VM_KEYS, where)
    name = get(raw, "name", str, where)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", name):
        raise SpecError(f"{where}.name: {name!r} is not allowed; use letters, digits, _ and -")
    scalars = {f.name: _scalar(raw, f, where) for f in SCALARS}
    args = get(raw, "args", list, where, [])
    if not all(isinstance(a, str) for a in args):
        raise SpecError(f"{where}.args: every argument must be a string")
    rest = None
    if "restore" in raw:
        r = get(raw, "restore", dict, where)
        comp = choice(r, "compression", COMPRESSIONS, f"{where}.restore", "zstd")
        rest = Restore(Path(get(r, "from", str, f"{where}.restore")), comp)
    fw = get(raw, "firmware", (dict, type(None)), where, None)
    return VMSpec(
        name=name,
        args=list(args),
        restore=rest,
        firmware=None if fw is None else _firmware(fw, f"{where}.firmware"),
        drives=[_drive(d, f"{where}.drives[{i}]") for i, d in _items(raw, "drives", where)],
        nics=[_nic(n, f"{where}.nics[{i}]", switch) for i, n in _items(raw, "nics", where)],
        kernel=_kernel(raw["kernel"], f"{where}.kernel") if raw.get("kernel") else None,
        shares=[_share(x, f"{where}.shares[{i}]") for i, x in _items(raw, "shares", where)],
        **scalars,
    )


def _scalar(raw: dict[str, Any], f: Scalar, where: str) -> Any:
    """One table field's value, checked as the table says (its default when absent)."""
    kinds = (int, float) if f.kind is float else f.kind
    if f.default is None:
        value = get(raw, f.name, kinds, where)
    else:
        value = get(raw, f.name, kinds, where, f.default)
    if f.kind is float:
        value = float(value)
    if f.bounds is not None and not f.bounds[0] <= value <= f.bounds[1]:
        low, high = f.bounds
        raise SpecError(f"{where}.{f.name}: {value} is out of range; use {low} to {high}")
    if f.pattern and value and not re.fullmatch(f.pattern, value):
        raise SpecError(f"{where}.{f.name}: {value!r} is not allowed; {f.fix}")
    return value


def _items(raw: dict[str, Any], key: str, where: str) -> list[tuple[int, dict[str, Any]]]:
    items = get(raw, key, list, where, [])
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SpecError(f"{where}.{key}[{i}]: not an object")
    return list(enumerate(items))


def _firmware(raw: dict[str, Any], where: str) -> Firmware:
    only_known(raw, {"code", "vars"}, where)
    return Firmware(code=get(raw, "code", str, where), vars=get(raw, "vars", str, where))


def _drive(raw: dict[str, Any], where: str) -> Drive:
    only_known(raw, {"file", "interface", "media", "index"}, where)
    return Drive(
        file=get(raw, "file", str, where),
        interface=choice(raw, "interface", INTERFACES, where, "virtio"),
        media=choice(raw, "media", MEDIA, where, "disk"),
        index=get(raw, "index", int, where, None),
    )


def _nic(raw: dict[str, Any], where: str, switch: str | None) -> Nic:
    only_known(raw, {"mac", "model", "switch"}, where)
    mac = get(raw, "mac", str, where)
    if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
        raise SpecError(f"{where}.mac: {mac!r} is not a MAC address; write 52:54:00:12:01:01")
    sw = get(raw, "switch", str, where, switch or "")
    if not sw:
        raise SpecError(f"{where}.switch: missing; set it, or the spec's switch")
    model = get(raw, "model", str, where, "virtio-net-pci")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", model):
        raise SpecError(f"{where}.model: {model!r} is not a QEMU device name")
    return Nic(mac=mac, model=model, switch=sw)


def _kernel(raw: Any, where: str) -> Kernel:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: not an object; give kernel, initrd and append")
    only_known(raw, {"kernel", "initrd", "append"}, where)
    return Kernel(
        kernel=get(raw, "kernel", str, where),
        initrd=get(raw, "initrd", str, where, ""),
        append=get(raw, "append", str, where, ""),
    )


def _share(raw: dict[str, Any], where: str) -> Share:
    only_known(raw, {"tag", "path", "readonly"}, where)
    tag = get(raw, "tag", str, where)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,31}", tag):
        raise SpecError(f"{where}.tag: {tag!r} is not allowed; use letters, digits, _ and -")
    readonly = get(raw, "readonly", bool, where, False)
    return Share(tag=tag, path=get(raw, "path", str, where), readonly=readonly)


def parse_step(raw: Any, i: int, names: list[str]) -> Step:
    where = f"spec.steps[{i}]"
    if not isinstance(raw, dict):
        raise SpecError(f'{where}: not an object; use e.g. {{"wait_exit": "guest"}}')
    actions = [k for k in raw if k in ACTIONS]
    if len(actions) != 1:
        raise SpecError(f"{where}: needs exactly one of {', '.join(ACTIONS)}; got {sorted(raw)}")
    only_known(raw, STEP_KEYS, where)
    action = actions[0]
    target = get(raw, action, str, where)
    if action == "wait_tcp" and not re.fullmatch(r"[^:\s]+:\d{1,5}", target):
        raise SpecError(
            f'{where}.wait_tcp: {target!r} is not HOST:PORT; use e.g. "127.0.0.1:10022"'
        )
    if action not in ("wait_file", "wait_tcp") and target not in names:
        raise SpecError(f"{where}.{action}: no VM named {target!r}; VMs are {names}")
    pattern = ""
    if action in ("wait_serial", "wait_exit"):
        # wait_exit: optional, a line the VM must have printed before it exited (its success sign)
        pattern = get(raw, "pattern", str, where, ... if action == "wait_serial" else "")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SpecError(
                f"{where}.pattern: {pattern!r} is not a regular expression ({exc})"
            ) from exc
    return Step(
        action=action,
        target=target,
        deadline=float(get(raw, "deadline", (int, float), where, DEFAULT_DEADLINE[action])),
        what=get(raw, "what", str, where, ""),
        pattern=pattern,
        to=get(raw, "to", str, where) if action == "save" else "",
        compression=choice(raw, "compression", COMPRESSIONS, where, "zstd"),
        fsync=get(raw, "fsync", bool, where, False),
    )
