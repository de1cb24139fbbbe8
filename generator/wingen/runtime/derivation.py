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
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .accel import resolve_accel, scaled
from .contract import (
    CONTROLLER_READY,
    GUEST_RESULT,
    INSTALL_DONE,
    OUTPUTS_ARCHIVE,
    OUTPUTS_LIST,
    PHASES,
    SETUP_FAILED,
    SHARES_FAILED,
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
from .stage import QUIT_BUDGET, GuestCommandError, Stage, execute, saved_accel
from .supervise import StageError, log

RECORD = "wingen"
STAGES = ("install", "suspend", "run")
GUEST_XCHG = "/tmp/xchg"  # where the guest and the controller see the exchange dir
# The build's own variables, which the guest sets for itself (guest-build.sh) or must not see.
NOT_HANDED_OVER = {
    "PATH", "HOME", "PWD", "OLDPWD", "SHLVL", "SHELL", "TERM", "TMPDIR", "TMP", "TEMP", "TEMPDIR",
    "NIX_BUILD_TOP", "NIX_LOG_FD", "_", "PYTHONPATH", "NIX_ATTRS_JSON_FILE", "NIX_ATTRS_SH_FILE",
}  # fmt: skip
RECORD_KEYS = {
    "stage", "accel", "qemu", "qemu_img", "zstd", "gzip", "vde_switch", "compression",
    "deadlines", "disk_size_gib", "guest", "controller", "base", "guest_command", "hold_command",
    "build_script", "builder", "args",
}  # fmt: skip
DEADLINES = ("install", "boot", "ssh", "build", "save")
# The install's record carries its own deadline alone (an edit of another keeps the install).
STAGE_DEADLINES = {"install": ("install",), "suspend": DEADLINES, "run": DEADLINES}
SSH_LOST = 255  # ssh's own exit code when the connection fails
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
    stage = choice(raw, "stage", STAGES, RECORD, "run")
    deadlines = get(raw, "deadlines", dict, RECORD)
    needed = STAGE_DEADLINES[stage]
    for key in needed:
        get(deadlines, key, (int, float), f"{RECORD}.deadlines")
    get(raw, "guest", dict, RECORD)
    choice(raw, "compression", COMPRESSIONS, RECORD, "zstd")
    if stage != "install":
        get(raw, "controller", dict, RECORD)
        get(raw, "base", str, RECORD)
        get(raw, "guest_command", str, RECORD)
        get(raw, "hold_command", str, RECORD, "")
    if stage == "run":
        get(raw, "build_script", str, RECORD)
        get(raw, "builder", str, RECORD)
        args = get(raw, "args", list, RECORD, [])
        if not all(isinstance(a, str) for a in args):
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
        return self.xchg / "wingen"

    @property
    def switch(self) -> Path:
        return self.work / "vde.ctl"

    def disk_dir(self, stage: str) -> Path:
        """Where this stage's disk (and firmware variables) live: a suspend keeps them."""
        if stage == "suspend":
            assert self.out is not None
            return self.out
        return self.work


def plan(rec: Record, dirs: Dirs, accel: str) -> StageSpec:
    """The VMs and steps of a stage (no side effects: the tests read it)."""
    disk_dir = dirs.disk_dir(rec.stage)
    guest = _guest(rec, disk_dir, dirs)
    vms = [guest]
    if rec.stage != "install":
        vms.append(_controller(rec, dirs))
    d = rec.deadlines
    steps: list[Step]
    if rec.stage == "install":
        what = rec["guest"].get("install", {}).get("what", "the installer")
        # Success is the installer's own line, not the power-off an installer that died makes too.
        done = line_pattern(INSTALL_DONE)
        steps = [Step("wait_exit", "guest", d["install"], what=what, pattern=done)]
    elif rec.stage == "suspend":
        assert dirs.out is not None
        steps = [
            Step("wait_serial", "controller", d["boot"] + d["ssh"], pattern=CONTROLLER_READY,
                 what="guest booted, SSH reachable, prepare command done, controller ready"),
            Step("pause", "controller", QUIT_BUDGET),
            Step("pause", "guest", QUIT_BUDGET),
            Step("save", "guest", d["save"], to=str(dirs.out / GUEST_STATE),
                 compression=rec["compression"]),
            Step("save", "controller", d["save"], to=str(dirs.out / CONTROLLER_STATE),
                 compression=rec["compression"]),
        ]  # fmt: skip
    else:
        steps = [
            Step("signal", "controller", QUIT_BUDGET, what="mount the shares, run the build"),
            Step("wait_exit", "controller", d["ssh"] + d["build"], what="the build in the guest"),
            Step("quit", "guest", QUIT_BUDGET),
        ]
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


def _vm_fields(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """A VM record's spec fields: without the record-only ones, and unset (null) ones."""
    fields = {k: v for k, v in raw.items() if v is not None and k not in ("disk", "install")}
    return {**fields, "name": name}


def _guest(rec: Record, disk_dir: Path, dirs: Dirs) -> VMSpec:
    raw = _vm_fields(rec["guest"], "guest")
    interface = rec["guest"].get("disk") or "virtio"
    install = rec["guest"].get("install") or {}
    drives = [{"file": str(disk_dir / "disk.qcow2"), "interface": interface, "index": 0}]
    if rec.stage == "install":
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
    raw["failure_file"] = str(dirs.control / "failure")
    _saved_as(rec, raw, CONTROLLER_STATE)
    return parse_vm(raw, f"{RECORD}.controller", str(dirs.switch))


def _saved_as(rec: Record, raw: dict[str, Any], state: str) -> None:
    """A VM of the base, saved as <base>/`state`: a template save keeps its RAM in a share=on
    file; a run revives it from there."""
    if rec.stage == "suspend" and rec["compression"] == "template":
        raw["template"] = True
    if rec.stage == "run":
        raw["restore"] = {"from": f"{rec['base']}/{state}", "compression": rec["compression"]}
        raw["restore_deadline"] = rec.deadlines["boot"]


def prepare(rec: Record, dirs: Dirs, build: BuildEnv, accel: str) -> None:
    """The files the stage's VMs start from."""
    stage = rec.stage
    disk_dir = dirs.disk_dir(stage)
    disk_dir.mkdir(parents=True, exist_ok=True)
    disk = disk_dir / "disk.qcow2"
    qemu_img = rec["qemu_img"]
    if stage == "install":
        _run([qemu_img, "create", "-q", "-f", "qcow2", str(disk), f"{rec['disk_size_gib']}G"])
    else:
        # An overlay: the stored disk of the stage before is never written.
        base_disk = f"{rec['base']}/disk.qcow2"
        _run([qemu_img, "create", "-q", "-f", "qcow2", "-b", base_disk, "-F", "qcow2", str(disk)])
    firmware = rec["guest"].get("firmware")  # null for BIOS guests
    if firmware:
        # UEFI: the variable store travels with the disk from stage to stage.
        src = firmware["vars"] if stage == "install" else f"{rec['base']}/firmware-vars.fd"
        shutil.copyfile(src, disk_dir / "firmware-vars.fd")
        (disk_dir / "firmware-vars.fd").chmod(0o644)
    if stage == "install":
        return
    dirs.control.mkdir(parents=True, exist_ok=True)
    ssh = scaled(rec.deadlines["ssh"], accel)
    (dirs.control / "ssh-deadline").write_text(f"{int(ssh)}\n")
    (dirs.control / "guest-command").write_text(rec["guest_command"] + "\n")
    if stage == "suspend":
        (dirs.control / "hold-command").write_text(rec.raw.get("hold_command", ""))
    if stage == "run":
        hand_over(build, dirs.xchg)
        paths = "".join(f"{path}\n" for path in build.outputs().values())
        (dirs.control / OUTPUTS_LIST).write_text(paths)
        shutil.copyfile(rec["build_script"], dirs.control / "build.sh")
        words = " ".join(sh_quote(w) for w in [rec["builder"], *rec["args"]])
        (dirs.control / "builder").write_text(f"exec {words}\n")


def hand_over(build: BuildEnv, xchg: Path) -> None:
    """The derivation's environment for the guest (xchg/saved-env, POSIX sh), and the files it
    names: passAsFile files, and with __structuredAttrs .attrs.json / .attrs.sh."""
    attrs_dir = xchg / "attrs"
    attrs_dir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in build.env.items()
        if k not in NOT_HANDED_OVER
        and not k.startswith("wingen")
        and k != RECORD
        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
    }
    # passAsFile attributes live in the host's build dir: hand them over through xchg.
    for name in (build.env.get("passAsFile") or "").split():
        var = f"{name}Path"
        if var in env:
            shutil.copyfile(env[var], attrs_dir / name)
            env[var] = f"{GUEST_XCHG}/attrs/{name}"
    if build.attrs is not None:
        # As stdenv does for structured attrs: each output's path under its name ($out, …).
        for name, path in (build.attrs.get("outputs") or {}).items():
            env.setdefault(name, path)
    for var, src in (
        ("NIX_ATTRS_JSON_FILE", build.attrs_json),
        ("NIX_ATTRS_SH_FILE", build.attrs_sh),
    ):
        if src is not None:
            shutil.copyfile(src, attrs_dir / src.name)
            env[var] = f"{GUEST_XCHG}/attrs/{src.name}"
    text = "".join(f"export {k}={sh_quote(v)}\n" for k, v in sorted(env.items()))
    (xchg / "saved-env").write_text(text)


def sh_quote(value: str) -> str:
    """One POSIX shell word."""
    return "'" + value.replace("'", "'\\''") + "'"


def collect(rec: Record, dirs: Dirs, outputs: Mapping[str, Path] | None = None) -> None:
    """After the VMs: the stage's result, or why it failed."""
    if rec.stage == "install":
        assert dirs.out is not None
        dirs.out.mkdir(parents=True, exist_ok=True)
        shutil.move(dirs.work / "disk.qcow2", dirs.out / "disk.qcow2")
        vars_file = dirs.work / "firmware-vars.fd"
        if vars_file.exists():
            shutil.move(vars_file, dirs.out / "firmware-vars.fd")
        return
    exit_file = dirs.xchg / "in-vm-exit"
    try:
        code = int(exit_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise StageError(
            "the controller ended without the guest command's exit code "
            f"({exit_file}: {exc.__class__.__name__})"
        ) from exc
    if rec.stage == "suspend":
        if code == SSH_LOST:
            raise GuestCommandError(_ssh_lost("the preparing command"), 1)
        if code:
            raise StageError(f"the preparing command in the guest exited with code {code}")
        return
    assert outputs is not None
    phase, phase_code = _guest_result(dirs.control, code)
    if phase == "builder":
        raise GuestCommandError(f"the builder in the guest failed with exit code {phase_code}",
                                phase_code)  # fmt: skip
    if phase != "finished":
        raise GuestCommandError(GUEST_PHASE_FAILED[phase], 1)
    from .outputs import missing, unpack  # the run stage's alone (saved.py says why)

    archive = dirs.control / OUTPUTS_ARCHIVE
    if archive.exists():
        unpack(archive, outputs)
    absent = missing(outputs)
    if absent:
        raise GuestCommandError(
            f"the builder exited 0 without making its output {', '.join(absent)} "
            f"({', '.join(str(outputs[n]) for n in absent)})", 1
        )  # fmt: skip


# What a phase that ended the build's guest side before its end means (contract.PHASES).
GUEST_PHASE_FAILED = {
    "setup": "the build could not start in the guest: its environment or build directory "
    f"(exit {SETUP_FAILED}; the build log says which)",
    "store": "the builder wrote into the store outside its outputs (the build log names each "
    "path); only the outputs are the guest's to write",
    "outputs": "packing the outputs in the guest failed (the build log says why)",
}


def _ssh_lost(what: str) -> str:
    return f"lost the SSH connection to the guest while {what} ran (ssh exit {SSH_LOST})"


def _guest_result(control: Path, code: int) -> tuple[str, int]:
    """The phase the guest side ended in and its code; without a result written, what the
    guest command's own exit code says (contract.py)."""
    try:
        phase, number = (control / GUEST_RESULT).read_text().split()
        if phase in PHASES:
            return phase, int(number)
    except FileNotFoundError:
        pass
    except ValueError:
        raise GuestCommandError(f"the guest's result file {GUEST_RESULT} is garbled", 1) from None
    if code == SSH_LOST:
        raise GuestCommandError(_ssh_lost("the build"), 1)
    if code == SHARES_FAILED:
        raise GuestCommandError(
            f"mapping the controller's shares in the guest failed (exit {SHARES_FAILED}; the "
            "build log says which)", 1
        )  # fmt: skip
    raise GuestCommandError(
        f"the guest command ended with code {code} before the build wrote its result", 1
    )


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
        out = None if rec.stage == "run" else build_env.output()
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
    if rec.stage != "install":
        # The guest command's output, live (the controller writes it into xchg).
        stage.echo.follow(dirs.control / "build.log", "")
    outputs = build_env.outputs() if rec.stage == "run" else None
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
