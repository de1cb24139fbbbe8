"""A stage as a Nix builder (`python3 -m wingen.runtime stage`, no spec): everything a stage
decides, decided here once.

The derivation carries one attribute, ``wingen``: a JSON record written by the rendered Nix::

  {"stage": "install" | "suspend" | "run",
   "accel": "auto" | "kvm" | "tcg",
   "qemu": …, "qemu_img": …, "zstd": …, "gzip": …, "vde_switch": …,   # programs
   "compression": "zstd" | "gzip" | "none" | "template",
   "deadlines": {"install": s, "boot": s, "ssh": s, "build": s, "save": s},   # before scaling
   "disk_size_gib": n,                                     # install: the new disk
   "guest": {VM fields of the spec (cpus, memory_mib, firmware, nics, kernel, rtc, args, …),
             "disk": "virtio" | "ide",                     # the stage's disk.qcow2 goes there
             "install": {"kernel": …, "drives": [cdroms, floppy], "boot": …,
                         "no_reboot": bool, "what": "…"}},  # what only the install adds
   "controller": {VM fields (kernel, shares, nics, debug_exit, …)},
   "base": "/nix/store/…",                                 # suspend, run: the stage before
   "guest_command": "…",                                   # suspend, run: for the guest's sh
   "hold_command": "…",                                    # suspend: run in the guest just
                                                           #   before the save ("": none)
   "build_script": "/nix/store/…", "builder": "…", "args": […]}   # run: the wrapped builder

The runtime adds what depends on the build: the disk (created, or an overlay on the base's), the
firmware variable store (copied along the stages), the exchange dir (``xchg``, shared with the
controller over 9p), the switch every NIC is plugged into, the revive of the base's state.
Install runs the guest alone (no controller: it has nothing to do there, and its SSH deadline
would end an install that outlasts it).  Suspend boots the base's disk, lets the controller run
the prepare command over SSH, waits until the controller says it is ready to be saved (smbd up,
SSH to the guest held open, no 9p share mounted) and saves both VMs.  Run revives both, tells
the controller to go on (a line on its signal port: it mounts the shares and runs the builder in
the guest), then reads the guest's result (the phase that ended it and its code: contract.py):
the builder's exit code fails the build as it is; a whole run unpacks the outputs the guest
packed into xchg (outputs.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .accel import resolve_accel, scaled
from .contract import (
    BUILD_LOG,
    CONTROL_DIR,
    CONTROLLER_READY,
    FAILURE,
    GUEST_COMMAND,
    INSTALL_DONE,
    SSH_DEADLINE,
    line_pattern,
)
from .spec import (
    ACCELS,
    COMPRESSIONS,
    SpecError,
    StageSpec,
    Step,
    Tools,
    VMSpec,
    choice,
    get,
    only_known,
    parse_vm,
)
from .stage import QUIT_BUDGET, Stage, execute, saved_accel
from .supervise import StageError, log

RECORD = "wingen"
RECORD_KEYS = {
    "stage", "accel", "qemu", "qemu_img", "zstd", "gzip", "vde_switch", "compression",
    "deadlines", "disk_size_gib", "guest", "controller", "base", "guest_command", "hold_command",
    "build_script", "builder", "args",
}  # fmt: skip
DEADLINES = ("install", "boot", "ssh", "build", "save")
# Where a base keeps each VM's saved state.
GUEST_STATE, CONTROLLER_STATE = "state", "controller-state"


def _attrs_file(env: Mapping[str, str], var: str, in_top: Path) -> Path:
    """Where an attrs file is: Nix < 2.15 names it in the host's build dir, which a sandboxed
    build does not see, while the file itself is in $NIX_BUILD_TOP (NixOS/nix#6736; nixpkgs'
    setup.sh falls back the same way)."""
    named = env.get(var)
    return Path(named) if named and Path(named).is_file() else in_top


@dataclass(frozen=True)
class BuildEnv:
    """What Nix gives the builder: the environment, and with __structuredAttrs the attributes
    as JSON (.attrs.json; Nix >= 2.13 names it in NIX_ATTRS_JSON_FILE, older ones put it in the
    build dir) beside their bash form (.attrs.sh)."""

    env: Mapping[str, str]
    top: Path
    attrs: dict[str, Any] | None = None
    attrs_json: Path | None = None
    attrs_sh: Path | None = None

    @staticmethod
    def read(env: Mapping[str, str]) -> BuildEnv:
        top = Path(env.get("NIX_BUILD_TOP") or Path.cwd())
        json_file = _attrs_file(env, "NIX_ATTRS_JSON_FILE", top / ".attrs.json")
        if not json_file.is_file():
            return BuildEnv(env, top)
        sh_file = _attrs_file(env, "NIX_ATTRS_SH_FILE", top / ".attrs.sh")
        attrs = json.loads(json_file.read_text())
        return BuildEnv(env, top, attrs, json_file, sh_file if sh_file.is_file() else None)

    def attr(self, name: str) -> Any:
        if self.attrs is not None:
            return self.attrs.get(name)
        return self.env.get(name)

    def output(self, name: str = "out") -> Path:
        path = self.env.get(name)
        if path is None and self.attrs is not None:
            path = self.attrs.get("outputs", {}).get(name)
        if not path:
            raise StageError(f"the derivation has no output {name!r}")
        return Path(path)

    def outputs(self) -> dict[str, Path]:
        """Every output's path by its name (`outputs`: a list in attrs, words in the env); none
        for `wingen shell`, whose environment is empty."""
        if self.attrs is not None:
            return {k: Path(v) for k, v in (self.attrs.get("outputs") or {}).items()}
        names = (self.env.get("outputs") or "out").split()
        return {name: Path(self.env[name]) for name in names if self.env.get(name)}


@dataclass(frozen=True)
class Record:
    stage: str
    accel: str
    raw: dict[str, Any]
    deadlines: dict[str, float]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]


def parse_record(text: str | None) -> Record:
    if not text:
        raise SpecError(f"{RECORD}: the derivation has no {RECORD} attribute; render it anew")
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"{RECORD}: not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{RECORD}: not a JSON object")
    only_known(raw, RECORD_KEYS, RECORD)
    stage = choice(raw, "stage", tuple(KINDS), RECORD, "run")
    deadlines = get(raw, "deadlines", dict, RECORD)
    needed = KINDS[stage].deadlines
    for key in needed:
        get(deadlines, key, (int, float), f"{RECORD}.deadlines")
    get(raw, "guest", dict, RECORD)
    choice(raw, "compression", COMPRESSIONS, RECORD, "zstd")
    for key, (kind, default) in KINDS[stage].record.items():
        get(raw, key, kind, RECORD, *default)
    if not all(isinstance(a, str) for a in raw.get("args", [])):
        raise SpecError(f"{RECORD}.args: every argument must be a string")
    return Record(
        stage=stage,
        accel=choice(raw, "accel", ACCELS, RECORD, "auto"),
        raw=raw,
        deadlines={k: float(deadlines[k]) for k in needed},
    )


@dataclass(frozen=True)
class Dirs:
    work: Path  # the build dir: disks and logs of this stage
    out: Path | None  # the output, for install and suspend

    @property
    def xchg(self) -> Path:
        return self.work / "xchg"

    @property
    def control(self) -> Path:
        """The controller's files: its SSH deadline, the guest command and their results."""
        return self.xchg / CONTROL_DIR

    @property
    def switch(self) -> Path:
        return self.work / "vde.ctl"

    def disk_dir(self, stage: str) -> Path:
        """Where this stage's disk (and firmware variables) live: a suspend keeps them."""
        if KINDS[stage].keeps_disk:
            assert self.out is not None
            return self.out
        return self.work


def plan(rec: Record, dirs: Dirs, accel: str) -> StageSpec:
    """The VMs and steps of a stage (no side effects: the tests read it)."""
    disk_dir = dirs.disk_dir(rec.stage)
    guest = _guest(rec, disk_dir, dirs)
    vms = [guest, _controller(rec, dirs)] if KINDS[rec.stage].controller else [guest]
    steps = KINDS[rec.stage].steps(rec, dirs)
    return StageSpec(
        accel=accel,
        tcg_deadline_scale=None,
        qemu=rec["qemu"],
        tools=Tools(zstd=rec["zstd"], gzip=rec["gzip"]),
        vde_switch=rec["vde_switch"],
        switch=str(dirs.switch) if any(vm.nics for vm in vms) else None,
        workdir=dirs.work,
        vms=vms,
        steps=steps,
    )


def _install_steps(rec: Record, dirs: Dirs) -> list[Step]:
    what = rec["guest"].get("install", {}).get("what", "the installer")
    # Success is the installer's own line, not the power-off an installer that died makes too.
    done = line_pattern(INSTALL_DONE)
    return [Step("wait_exit", "guest", rec.deadlines["install"], what=what, pattern=done)]


def _suspend_steps(rec: Record, dirs: Dirs) -> list[Step]:
    assert dirs.out is not None
    d = rec.deadlines
    return [
        Step("wait_serial", "controller", d["boot"] + d["ssh"], pattern=CONTROLLER_READY,
             what="guest booted, SSH reachable, prepare command done, controller ready"),
        Step("pause", "controller", QUIT_BUDGET),
        Step("pause", "guest", QUIT_BUDGET),
        Step("save", "guest", d["save"], to=str(dirs.out / GUEST_STATE),
             compression=rec["compression"]),
        Step("save", "controller", d["save"], to=str(dirs.out / CONTROLLER_STATE),
             compression=rec["compression"]),
    ]  # fmt: skip


def _run_steps(rec: Record, dirs: Dirs) -> list[Step]:
    d = rec.deadlines
    return [
        Step("signal", "controller", QUIT_BUDGET, what="mount the shares, run the build"),
        Step("wait_exit", "controller", d["ssh"] + d["build"], what="the build in the guest"),
        Step("quit", "guest", QUIT_BUDGET),
    ]


def _vm_fields(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """A VM record's spec fields: without the record-only ones, and unset (null) ones."""
    fields = {k: v for k, v in raw.items() if v is not None and k not in ("disk", "install")}
    return {**fields, "name": name}


def _guest(rec: Record, disk_dir: Path, dirs: Dirs) -> VMSpec:
    raw = _vm_fields(rec["guest"], "guest")
    interface = rec["guest"].get("disk") or "virtio"
    install = rec["guest"].get("install") or {}
    drives = [{"file": str(disk_dir / "disk.qcow2"), "interface": interface, "index": 0}]
    if KINDS[rec.stage].new_disk:  # the install media and how they boot
        only_known(install, {"kernel", "drives", "boot", "no_reboot", "what"}, "guest.install")
        if install.get("kernel"):
            raw["kernel"] = install["kernel"]
        drives += install.get("drives", [])
        raw["boot"] = install.get("boot", "")
        raw["no_reboot"] = install.get("no_reboot", True)
    raw["drives"] = drives
    if raw.get("firmware"):
        raw["firmware"] = {**raw["firmware"], "vars": str(disk_dir / "firmware-vars.fd")}
    _saved_as(rec, raw, GUEST_STATE)
    return parse_vm(raw, f"{RECORD}.guest", str(dirs.switch))


def _controller(rec: Record, dirs: Dirs) -> VMSpec:
    """The controller is saved with the guest and revived with it (see the module docstring)."""
    raw = _vm_fields(rec["controller"], "controller")
    raw["shares"] = [*raw.get("shares", []), {"tag": "xchg", "path": str(dirs.xchg)}]
    raw["failure_file"] = str(dirs.control / FAILURE)
    _saved_as(rec, raw, CONTROLLER_STATE)
    return parse_vm(raw, f"{RECORD}.controller", str(dirs.switch))


def _saved_as(rec: Record, raw: dict[str, Any], state: str) -> None:
    """A VM of the base, saved as <base>/`state`: a template save keeps its RAM in a share=on
    file; a run revives it from there."""
    if KINDS[rec.stage].saves and rec["compression"] == "template":
        raw["template"] = True
    if KINDS[rec.stage].revives:
        raw["restore"] = {"from": f"{rec['base']}/{state}", "compression": rec["compression"]}
        raw["restore_deadline"] = rec.deadlines["boot"]


def prepare(rec: Record, dirs: Dirs, build: BuildEnv, accel: str) -> None:
    """The files the stage's VMs start from."""
    kind = KINDS[rec.stage]
    disk_dir = dirs.disk_dir(rec.stage)
    disk_dir.mkdir(parents=True, exist_ok=True)
    disk = disk_dir / "disk.qcow2"
    qemu_img = rec["qemu_img"]
    if kind.new_disk:
        _run([qemu_img, "create", "-q", "-f", "qcow2", str(disk), f"{rec['disk_size_gib']}G"])
    else:
        # An overlay: the stored disk of the stage before is never written.
        base_disk = f"{rec['base']}/disk.qcow2"
        _run([qemu_img, "create", "-q", "-f", "qcow2", "-b", base_disk, "-F", "qcow2", str(disk)])
    firmware = rec["guest"].get("firmware")  # null for BIOS guests
    if firmware:
        # UEFI: the variable store travels with the disk from stage to stage.
        src = firmware["vars"] if kind.new_disk else f"{rec['base']}/firmware-vars.fd"
        shutil.copyfile(src, disk_dir / "firmware-vars.fd")
        (disk_dir / "firmware-vars.fd").chmod(0o644)
    if not kind.controller:
        return
    dirs.control.mkdir(parents=True, exist_ok=True)
    ssh = scaled(rec.deadlines["ssh"], accel)
    (dirs.control / SSH_DEADLINE).write_text(f"{int(ssh)}\n")
    (dirs.control / GUEST_COMMAND).write_text(rec["guest_command"] + "\n")
    kind.control_files(rec, dirs, build)


def collect(rec: Record, dirs: Dirs, outputs: Mapping[str, Path] | None = None) -> None:
    """After the VMs: the stage's result, or why it failed."""
    KINDS[rec.stage].collect(rec, dirs, outputs or {})


def _collect_disk(rec: Record, dirs: Dirs, outputs: Mapping[str, Path]) -> None:
    """The install: the new disk (and firmware variables) are $out."""
    assert dirs.out is not None
    dirs.out.mkdir(parents=True, exist_ok=True)
    shutil.move(dirs.work / "disk.qcow2", dirs.out / "disk.qcow2")
    vars_file = dirs.work / "firmware-vars.fd"
    if vars_file.exists():
        shutil.move(vars_file, dirs.out / "firmware-vars.fd")


@dataclass(frozen=True)
class Kind:
    """What a stage is: every decision the runtime takes by stage, as data."""

    deadlines: tuple[str, ...]  # those its record carries
    record: dict[str, tuple[type | tuple[type, ...], tuple[Any, ...]]]  # key: (type, (default,))
    controller: bool  # the controller runs beside the guest (no SSH deadline without it)
    new_disk: bool  # an empty disk and the install media, else an overlay on the base's disk
    keeps_disk: bool  # its disk and firmware variables are its output
    saves: bool  # its VMs end saved
    revives: bool  # its VMs start from the base's saved states
    builds: bool  # it runs a derivation's builder: $out is the builder's, not a disk
    steps: Callable[[Record, Dirs], list[Step]]
    control_files: Callable[[Record, Dirs, BuildEnv], None]
    collect: Callable[[Record, Dirs, Mapping[str, Path]], None]


def _no_files(rec: Record, dirs: Dirs, build: BuildEnv) -> None:
    pass


def _later(name: str) -> Callable[..., None]:
    """guest_io.py's `name`, imported when first called: the install calls none of them, so its
    runtime does not hold what a build hands the guest and takes back (saved.py says why)."""

    def call(*args: Any) -> None:
        from . import guest_io

        getattr(guest_io, name)(*args)

    return call


_COMMAND = {"controller": (dict, ()), "base": (str, ()), "guest_command": (str, ())}
KINDS = {
    # The install's record carries its own deadline alone: another's edit keeps the install.
    "install": Kind(("install",), {"disk_size_gib": (int, ())}, controller=False,
                    new_disk=True, keeps_disk=False, saves=False, revives=False, builds=False,
                    steps=_install_steps, control_files=_no_files, collect=_collect_disk),
    "suspend": Kind(DEADLINES, {**_COMMAND, "hold_command": (str, ("",))}, controller=True,
                    new_disk=False, keeps_disk=True, saves=True, revives=False, builds=False,
                    steps=_suspend_steps, control_files=_later("hold_files"),
                    collect=_later("collect_prepared")),
    "run": Kind(DEADLINES, {**_COMMAND, "build_script": (str, ()), "builder": (str, ()),
                            "args": (list, ([],))}, controller=True,
                new_disk=False, keeps_disk=False, saves=False, revives=True, builds=True,
                steps=_run_steps, control_files=_later("build_files"),
                collect=_later("collect_outputs")),
}  # fmt: skip


def run_derivation(environ: Mapping[str, str] | None = None) -> int:
    """The Nix builder's entry point."""
    try:
        build_env = BuildEnv.read(os.environ if environ is None else environ)
        rec = parse_record(build_env.attr(RECORD))
    except (SpecError, OSError, ValueError) as exc:
        log(f"{RECORD}: {exc}" if not isinstance(exc, SpecError) else str(exc))
        return 2
    label = f"wingen[{rec.stage}]"
    started = time.monotonic()
    accel = rec.accel
    try:
        kind = KINDS[rec.stage]
        out = None if kind.builds else build_env.output()
        dirs = Dirs(work=build_env.top, out=out)
        # The plan names the state a revive loads; saved_accel reads what it was saved under.
        spec = plan(rec, dirs, rec.accel)
        accel = resolve_accel(
            rec.accel,
            rec["qemu"],
            saved_accel(spec),
            kvm_required="kvm" in str(build_env.attr("requiredSystemFeatures") or ""),
        )
        spec = replace(spec, accel=accel)
        prepare(rec, dirs, build_env, accel)
    except (SpecError, StageError, OSError) as exc:
        log(f"{label}: stage failed: {exc}")
        return 2 if isinstance(exc, SpecError) else 1
    stage = Stage(spec)
    if kind.controller:
        # The guest command's output, live (the controller writes it into xchg).
        stage.echo.follow(dirs.control / BUILD_LOG, "")
    outputs = build_env.outputs() if kind.builds else None
    code = execute(stage, lambda: collect(rec, dirs, outputs))
    log(f"{label}: {accel}, {time.monotonic() - started:.0f} s")
    if code:
        # The reason is the log's last line: nix build shows a failed build's tail.
        log(f"{label}: stage failed: {stage.failure or f'exit code {code}'}")
    return code


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StageError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
