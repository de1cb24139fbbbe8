"""The stage as a Nix builder (runtime/derivation.py): the plan of each stage, the files it
prepares, the environment handed to the guest, the result it collects (no VM needed)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from wingen.runtime.accel import TCG_SCALE, resolve_accel
from wingen.runtime.derivation import (
    BuildEnv,
    Dirs,
    collect,
    parse_record,
    plan,
    prepare,
)
from wingen.runtime.guest_io import hand_over
from wingen.runtime.spec import SpecError
from wingen.runtime.stage import GuestCommandError
from wingen.runtime.supervise import StageError
from wingen.runtime.vm import VM

ROOT = Path(__file__).resolve().parents[2]
DEADLINES = {"install": 100, "boot": 20, "ssh": 10, "build": 50, "save": 30}


def record(stage: str, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "stage": stage,
        "accel": "auto",
        "qemu": "qemu-system-x86_64",
        "qemu_img": "qemu-img",
        "zstd": "zstd",
        "gzip": "gzip",
        "vde_switch": "vde_switch",
        "compression": "zstd",
        "deadlines": DEADLINES,
        "disk_size_gib": 1,
        "guest": {
            "memory_mib": 256,
            "cpus": 2,
            "rtc": "2010-01-01",
            "args": ["-usb"],
            "firmware": None,
            "disk": "virtio",
            "nics": [{"model": "virtio-net-pci", "mac": "52:54:00:12:01:01"}],
            "kernel": {"kernel": "/k", "initrd": "/boot-initrd", "append": "mode=boot"},
            "shares": [],
            "debug_exit": False,
            "install": {
                "kernel": {"kernel": "/k", "initrd": "/inst-initrd", "append": "mode=install"},
                "what": "the installer",
            },
        },
        "controller": {
            "memory_mib": 128,
            "kernel": {"kernel": "/k", "initrd": "/c", "append": "c"},
            "shares": [{"tag": "store", "path": "/nix/store"}],
            "nics": [{"model": "virtio-net-pci", "mac": "52:54:00:12:01:02"}],
            "debug_exit": True,
            "disk": None,
            "install": None,
        },
    }
    if stage != "install":
        rec |= {"base": "/base", "guest_command": "sync"}
    if stage == "run":
        rec |= {"build_script": "/b.sh", "builder": "/bin/sh", "args": ["-c", "echo 'hi'"]}
    return rec | extra


def dirs(tmp: Path) -> Dirs:
    return Dirs(work=tmp / "build", out=tmp / "out")


def argv(vm: Any) -> str:
    return " ".join(VM(vm, qemu="q", accel="tcg", rundir=Path("/r"), logdir=Path("/l")).argv())


def test_install_runs_the_guest_alone_with_the_install_deadline(tmp_path: Path) -> None:
    """Issue 8 item 3: no controller (and so no SSH deadline) during an install."""
    spec = plan(parse_record(json.dumps(record("install"))), dirs(tmp_path), "tcg")
    assert [vm.name for vm in spec.vms] == ["guest"]
    assert [(s.action, s.target, s.deadline) for s in spec.steps] == [("wait_exit", "guest", 100)]
    # Done only when the installer says so: a power-off alone is what an installer that died does.
    assert re.search(spec.steps[0].pattern, "x\nWINGEN-INSTALL-DONE\ny", re.MULTILINE)
    assert not re.search(spec.steps[0].pattern, "x\nWINGEN-INSTALL-DONE-NOT\n", re.MULTILINE)
    guest = argv(spec.vms[0])
    assert "mode=install" in guest and "/inst-initrd" in guest
    assert f"file={tmp_path}/build/disk.qcow2,if=virtio,index=0" in guest


def test_suspend_saves_with_its_own_deadline(tmp_path: Path) -> None:
    spec = plan(parse_record(json.dumps(record("suspend"))), dirs(tmp_path), "tcg")
    assert [vm.name for vm in spec.vms] == ["guest", "controller"]
    wait, pause, pause_guest, save, save_controller = spec.steps
    # Saved only once the controller says so: smbd up, SSH held, no 9p share mounted.
    assert (wait.action, wait.target, wait.deadline) == ("wait_serial", "controller", 30)
    assert wait.pattern == "wingen-controller: ready to be saved"
    # Both VMs saved, the controller paused first so neither runs on during the other's save.
    assert (pause.action, pause.target) == ("pause", "controller")
    assert (pause_guest.action, pause_guest.target) == ("pause", "guest")
    assert (save.action, save.deadline, save.to) == ("save", 30, f"{tmp_path}/out/state")
    assert (save_controller.target, save_controller.to) == (
        "controller",
        f"{tmp_path}/out/controller-state",
    )
    guest, controller = (argv(vm) for vm in spec.vms)
    assert "mode=boot" in guest and f"{tmp_path}/out/disk.qcow2" in guest
    assert "-smp 2" in guest and "-rtc base=2010-01-01,clock=vm" in guest and "-usb" in guest
    assert "mount_tag=xchg" in controller and "isa-debug-exit" in controller
    assert f"sock={tmp_path}/build/vde.ctl" in controller
    assert spec.vms[1].failure_file == f"{tmp_path}/build/xchg/wingen/failure"


def test_run_revives_the_base(tmp_path: Path) -> None:
    spec = plan(parse_record(json.dumps(record("run"))), dirs(tmp_path), "kvm")
    guest = spec.vms[0]
    assert guest.restore is not None and str(guest.restore.path) == "/base/state"
    assert guest.restore_deadline == 20
    controller = spec.vms[1]
    assert controller.restore is not None
    assert str(controller.restore.path) == "/base/controller-state"
    signal, wait, _ = spec.steps
    # The revived controller goes on when told; its wait has the SSH and build deadlines.
    assert (signal.action, signal.target) == ("signal", "controller")
    assert (wait.action, wait.target, wait.deadline) == ("wait_exit", "controller", 60)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stage": "boot"}, "wingen.stage: 'boot' is not allowed"),
        ({"deadlines": {"install": 1}}, "wingen.deadlines.boot: missing"),
        ({"colour": 1}, "wingen.colour: unknown field"),
        ({"args": [1]}, "wingen.args: every argument must be a string"),
    ],
)
def test_bad_record_is_one_line(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_record(json.dumps(record("run") | change))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_prepare_makes_an_overlay_and_the_controller_files(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base / "disk.qcow2"), "1G"],
                   check=True)  # fmt: skip
    rec = parse_record(json.dumps(record("suspend", base=str(base), guest_command="echo hi")))
    d = dirs(tmp_path)
    d.work.mkdir()
    prepare(rec, d, BuildEnv({}, d.work), "tcg")
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(d.out / "disk.qcow2")],  # type: ignore[operator]
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert info["backing-filename"] == str(base / "disk.qcow2")
    assert info["backing-filename-format"] == "qcow2"
    assert (d.control / "guest-command").read_text() == "echo hi\n"
    # The controller waits for SSH with the deadline scaled the one way (accel.TCG_SCALE).
    assert (d.control / "ssh-deadline").read_text() == f"{int(10 * TCG_SCALE)}\n"


def sh_env(saved: Path, *names: str) -> list[str]:
    """The values a POSIX sh sees after sourcing saved-env."""
    script = f". {saved}; " + "; ".join(f'printf "%s\\0" "${{{n}-UNSET}}"' for n in names)
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


def test_hand_over_quotes_everything_and_leaves_the_build_own(tmp_path: Path) -> None:
    """Issue 9 item 2: read the environment directly (nixpkgs' bash has no compgen)."""
    tricky = 'it\'s "quoted" $HOME `x` \\ \n new line'
    env = {
        "out": "/nix/store/x-out",
        "tricky": tricky,
        "PATH": "/host/bin",
        "wingen": "{}",
        "wingenOld": "x",
        "NIX_BUILD_TOP": "/build",
        "has-dash": "skipped",
    }
    hand_over(BuildEnv(env, tmp_path), tmp_path / "xchg")
    saved = tmp_path / "xchg" / "saved-env"
    assert sh_env(saved, "out", "tricky", "wingen", "wingenOld", "NIX_BUILD_TOP") == [
        "/nix/store/x-out",
        tricky,
        "UNSET",
        "UNSET",
        "UNSET",
    ]
    text = saved.read_text()
    assert "has-dash" not in text and "PATH" not in text


def test_hand_over_pass_as_file(tmp_path: Path) -> None:
    note = tmp_path / ".attr-note"
    note.write_text("a note")
    env = {"passAsFile": "note", "notePath": str(note)}
    hand_over(BuildEnv(env, tmp_path), tmp_path / "xchg")
    assert (tmp_path / "xchg" / "attrs" / "note").read_text() == "a note"
    assert sh_env(tmp_path / "xchg" / "saved-env", "notePath") == ["/tmp/xchg/attrs/note"]


@pytest.mark.parametrize("named", [True, False])
def test_structured_attrs_reach_the_runtime_and_the_guest(tmp_path: Path, named: bool) -> None:
    """Issue 9 item 5: with __structuredAttrs the record and $out come from .attrs.json (named
    by NIX_ATTRS_JSON_FILE on Nix >= 2.13, in the build dir before), and the guest gets both
    files and the variables naming them."""
    attrs = {"wingen": json.dumps(record("install")), "outputs": {"out": "/nix/store/y-out"}}
    (tmp_path / ".attrs.json").write_text(json.dumps(attrs))
    (tmp_path / ".attrs.sh").write_text("declare out='/nix/store/y-out'\n")
    env = {"NIX_BUILD_TOP": str(tmp_path)}
    if named:
        env |= {
            "NIX_ATTRS_JSON_FILE": str(tmp_path / ".attrs.json"),
            "NIX_ATTRS_SH_FILE": str(tmp_path / ".attrs.sh"),
        }
    build = BuildEnv.read(env)
    assert parse_record(build.attr("wingen")).stage == "install"
    assert build.output() == Path("/nix/store/y-out")
    hand_over(build, tmp_path / "xchg")
    attrs_dir = tmp_path / "xchg" / "attrs"
    assert json.loads((attrs_dir / ".attrs.json").read_text()) == attrs
    saved = tmp_path / "xchg" / "saved-env"
    assert sh_env(saved, "NIX_ATTRS_JSON_FILE", "NIX_ATTRS_SH_FILE", "out") == [
        "/tmp/xchg/attrs/.attrs.json",
        "/tmp/xchg/attrs/.attrs.sh",
        "/nix/store/y-out",  # exported as stdenv exports outputs
    ]


# (the guest command's exit code, the guest's result file, the reason, the build's exit code)
COLLECT_RUN = [
    # The builder's own code, whatever it is: 97 and 98 are the guest command's codes for the
    # shares and the setup, 255 is ssh's for a lost connection; the result says whose it is.
    ("3", "builder 3", "the builder in the guest failed with exit code 3", 3),
    ("97", "builder 97", "the builder in the guest failed with exit code 97", 97),
    ("98", "builder 98", "the builder in the guest failed with exit code 98", 98),
    ("255", "builder 255", "the builder in the guest failed with exit code 255", 255),
    ("97", None, "mapping the controller's shares in the guest failed (exit 97", 1),
    ("98", "setup 98", "the build could not start in the guest", 1),
    ("1", "store 1", "the builder wrote into the store outside its outputs", 1),
    ("1", "outputs 1", "packing the outputs in the guest failed", 1),
    ("255", None, "lost the SSH connection to the guest while the build ran", 1),
    ("0", None, "the guest command ended with code 0 before the build wrote its result", 1),
    ("0", "builder x", "the guest's result file guest-result is garbled", 1),
    ("0", "finished 0", "the builder exited 0 without making its output out (", 1),
]


@pytest.mark.parametrize(("code", "result", "message", "exit_code"), COLLECT_RUN)
def test_collect_run_names_the_phase(
    tmp_path: Path, code: str, result: str | None, message: str, exit_code: int
) -> None:
    """Issue 20 item 2: the guest's result names the phase that ended the build."""
    d = dirs(tmp_path)
    d.control.mkdir(parents=True)
    (d.xchg / "in-vm-exit").write_text(code + "\n")
    if result is not None:
        (d.control / "guest-result").write_text(result + "\n")
    outputs = {"out": tmp_path / "store" / "abc-out"}
    with pytest.raises(GuestCommandError) as info:
        collect(parse_record(json.dumps(record("run"))), d, outputs)
    assert message in str(info.value)
    assert info.value.code == exit_code


def test_collect_run_without_an_exit_code(tmp_path: Path) -> None:
    d = dirs(tmp_path)
    d.xchg.mkdir(parents=True)
    with pytest.raises(StageError, match="the controller ended without the guest command's exit"):
        collect(parse_record(json.dumps(record("run"))), d, {})


def test_accel_resolution_follows_the_snapshot_without_probing() -> None:
    assert resolve_accel("auto", "/nonexistent/qemu", saved="kvm") == "kvm"
    assert resolve_accel("tcg", "/nonexistent/qemu", saved="kvm") == "tcg"


def test_stage_builder_holds_no_decisions() -> None:
    """Issue 13: the builder only hands over to the runtime."""
    script = (ROOT / "templates" / "scripts" / "stage.sh.j2").read_text()
    assert len(script.splitlines()) <= 30
    code = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert code == ['exec "$python" -B -m wingen.runtime stage']


def test_tcg_scaling_is_written_once() -> None:
    """The factor lives in accel.TCG_SCALE only: no template or other module repeats it."""
    defined = [p.name for p in (ROOT / "generator").rglob("*.py") if "TCG_SCALE =" in p.read_text()]
    assert defined == ["accel.py"]
    for path in (ROOT / "templates").rglob("*.j2"):
        text = path.read_text()
        assert "tcg_deadline_scale" not in text and not re.search(r"scale=\d|\* ?3\b", text), path


def test_revive_check_covers_the_typed_vm_fields(tmp_path: Path) -> None:
    """One revive check (snapshot.check_meta) over what Stage.state_meta records."""
    from wingen.runtime.snapshot import SnapshotError, check_meta
    from wingen.runtime.stage import Stage

    rec = parse_record(json.dumps(record("run")))
    spec = plan(rec, dirs(tmp_path), "tcg")
    meta = Stage(spec).state_meta(spec.vms[0])
    assert meta["cpus"] == 2 and meta["nics"] == ["virtio-net-pci:52:54:00:12:01:01"]
    state = tmp_path / "state"
    (tmp_path / "state.json").write_text(json.dumps(meta))
    check_meta(state, meta)
    with pytest.raises(SnapshotError, match="saved with cpus=2 but is revived with cpus=4"):
        check_meta(state, {**meta, "cpus": 4})


def test_builder_without_a_record_is_exit_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wingen.runtime.derivation import run_derivation

    assert run_derivation({"NIX_BUILD_TOP": str(tmp_path)}) == 2
    err = capsys.readouterr().err.strip()
    assert err == "wingen-runtime: wingen: the derivation has no wingen attribute; render it anew"
    (tmp_path / ".attrs.json").write_text("{not json")
    assert run_derivation({"NIX_BUILD_TOP": str(tmp_path)}) == 2
    assert capsys.readouterr().err.count("\n") == 1
