"""The whole pipeline on a Linux guest: install -> suspend -> revive + build, by real nix-build.

Each stage boots real VMs (TCG here, KVM where it works); the tests run in file order and share
the base built by the first ones."""

from __future__ import annotations

import grp
import json
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import E2E, modified, stdout_of
from .nixdaemon import BUILD_GROUP
from .where import VmProcess

pytestmark = pytest.mark.e2e


def stage_seconds(output: str, stage: str) -> float | None:
    """The stage's own wall time, as the stage script reports it ("wingen[run]: tcg, 17 s")."""
    found = re.findall(rf"wingen\[{stage}\]: (\w+), (\d+) s", output)
    return float(found[-1][1]) if found else None


def out_path(e2e: E2E, attr: str) -> Path:
    return (e2e.dir / attr).resolve()


def our_processes(e2e: E2E) -> list[str]:
    """QEMU, vde_switch or smbd processes started for this session's derivations."""
    ps = subprocess.run(["ps", "-eo", "pid,args"], stdout=subprocess.PIPE, text=True, check=True)
    return [
        line
        for line in ps.stdout.splitlines()
        if re.search(r"qemu-system|vde_switch|smbd", line) and e2e.name in line
    ]


def unprivileged(vm: VmProcess) -> bool:
    return vm.user in grp.getgrnam(BUILD_GROUP).gr_mem


def test_install_stage_writes_a_disk(e2e: E2E) -> None:
    run = e2e.build("installed")
    assert run.returncode == 0, run.output
    e2e.timings["install (nix-build)"] = run.seconds
    e2e.timings["install (stage)"] = stage_seconds(run.output, "install") or -1
    disk = out_path(e2e, "installed") / "disk.qcow2"
    assert disk.stat().st_size > 64 * 1024
    # Its VMs ran as a build user, in a sandbox of the local store.
    assert run.vms, "no QEMU process seen during the install stage"
    assert all(unprivileged(vm) and vm.store == "/nix/store" for vm in run.vms), run.vms


def test_initrds_are_owned_by_root_whoever_built_them(e2e: E2E) -> None:
    """The installer copies its initrd's tree onto the guest's disk, and dropbear refuses a /root
    owned by anyone but root: a build user's uid in the archive would lock SSH out."""
    drv = e2e.instantiate("installed")[0]
    record = json.loads(stdout_of(e2e.env, "nix-store", "--query", "--binding", "wingen", drv))
    initrd = record["guest"]["install"]["kernel"]["initrd"]
    unpacked = subprocess.run(["gzip", "-dc", initrd], capture_output=True, check=True).stdout
    listing = subprocess.run(
        ["cpio", "-tv", "--quiet", "--numeric-uid-gid"],
        input=unpacked,
        capture_output=True,
        check=True,
    ).stdout.decode()
    entries = [line.split() for line in listing.splitlines()]
    assert any(e[-1] == "payload/root" for e in entries), listing[:500]
    assert {(e[2], e[3]) for e in entries} == {("0", "0")}


def test_suspend_stage_saves_the_running_guest(e2e: E2E) -> None:
    run = e2e.build("base")
    assert run.returncode == 0, run.output
    e2e.timings["suspend (nix-build)"] = run.seconds
    e2e.timings["suspend (stage)"] = stage_seconds(run.output, "suspend") or -1
    base = out_path(e2e, "base")
    assert (base / "state").stat().st_size > 1024 * 1024
    info = subprocess.run(
        ["qemu-img", "info", str(base / "disk.qcow2")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    assert "installed/disk.qcow2" in info  # an overlay on the installed disk
    # The controller is saved beside the guest, ready: smbd up, a shell held in the guest, the
    # Linux guest's SMB session held, no 9p share mounted (else its save would be refused).
    assert (base / "controller-state").stat().st_size > 1024 * 1024
    for said in ("holding a shell in the guest", "ready to be saved"):
        assert f"[controller] wingen-controller: {said}" in run.output, run.output
    assert "no SMB session held" not in run.output


def test_revive_builds_a_derivation_in_the_guest(e2e: E2E) -> None:
    run = e2e.build("ok")
    assert run.returncode == 0, run.output
    e2e.timings["revive + build, exit 0 (nix-build)"] = run.seconds
    e2e.timings["revive + build, exit 0 (stage)"] = stage_seconds(run.output, "run") or -1
    out = out_path(e2e, "ok")
    assert (out / "result.txt").read_text() == "written in the guest\n"
    assert (out / "note").read_text() == "passed as a file"
    # Samba follows symlinks on the controller: an absolute one into another store path
    # resolves only because the store is served from /nix/store itself.
    assert (out / "via-link").read_text() == "reached through a store symlink"
    # It ran in the guest: the guest's kernel, and its host name in the build log.
    release = next((e2e.kernel_root / "lib" / "modules").iterdir()).name
    assert (out / "kernel").read_text().strip() == release
    assert "building in wingen-guest" in run.output
    # Nothing booted and nobody logged in: the revived controller handed the command to the
    # shell it held across the save.
    assert "[controller] wingen-controller: running the guest command" in run.output
    assert "wingen-controller: waiting up to" not in run.output
    assert re.search(r"revive: guest, controller running after \d", run.output), run.output


def test_structured_attrs_reach_the_guest(e2e: E2E) -> None:
    run = e2e.build("structured")
    assert run.returncode == 0, run.output
    out = out_path(e2e, "structured")
    attrs = json.loads((out / "attrs.json").read_text())
    assert attrs["greeting"] == "it's structured"
    assert attrs["words"] == ["a", "b c"]
    assert attrs["outputs"]["out"] == str(out)
    assert "declare greeting=" in (out / "attrs.sh").read_text()
    assert (out / "host").read_text().strip() == "wingen-guest"


def test_guest_exit_code_fails_the_build(e2e: E2E) -> None:
    run = e2e.build("fail")
    e2e.timings["revive + build, exit 3 (nix-build)"] = run.seconds
    assert run.returncode != 0
    assert "about to fail" in run.output
    assert "failed with exit code 3" in run.output
    assert not out_path(e2e, "fail").exists()


def test_builders_are_unprivileged_and_the_store_read_only(e2e: E2E) -> None:
    run = e2e.build("storeProbe")
    assert run.returncode == 0, run.output
    uid, input_mode = out_path(e2e, "storeProbe").read_text().split()[:2]
    # uid 1000 is the sandbox's view of the build user; the input is root's (shown as nobody in
    # the sandbox's user namespace), read-only, and the write to it failed.
    assert (uid, input_mode) == ("1000", "nobody:444")
    assert "wrote into the store" not in out_path(e2e, "storeProbe").read_text()
    assert "Permission denied" in run.output


def test_revive_unsandboxed_as_root_leaves_the_store_intact(e2e: E2E) -> None:
    """The other setting: `sandbox = false`, no daemon, no build users, as root on the store
    (Debian's single-user nix-bin). Root can write into store paths; the stages must not (Python
    left __pycache__ in the runtime's)."""
    inputs = e2e.repaired_inputs("unsandboxed")
    run = e2e.build("unsandboxed", env=e2e.root_env)
    assert run.returncode == 0, run.output
    e2e.timings["revive + build, unsandboxed as root (nix-build)"] = run.seconds
    assert "in the guest" in run.output
    assert run.vms and all(vm.user == "root" and vm.store is None for vm in run.vms), run.vms
    assert modified(e2e.root_env, inputs) == []


def test_guest_without_ssh_ends_at_the_deadline(e2e: E2E) -> None:
    base = e2e.build("nosshBase")
    assert base.returncode == 0, base.output
    run = e2e.build("nossh")
    e2e.timings["revive, SSH never answers (nix-build)"] = run.seconds
    assert run.returncode != 0
    # The controller's own reason, decoded, under the step that failed (not "exit code 3").
    assert re.search(
        r"step 2/3 \(wait_exit controller \(the build in the guest\)\) failed: "
        r"VM controller failed: ssh deadline: the guest did not answer SSH on 192\.168\.0\.1:22 "
        r"within \d+s",
        run.output,
    ), run.output
    # The guest's last serial lines are shown (the runtime's or the stage script's report).
    assert re.search(r"VM guest .*last \d+ serial lines|last serial lines of the guest", run.output)
    # The deadline (10 s, x3 under TCG) bounds it, not the 120 s build deadline.
    assert run.seconds < 120
    assert our_processes(e2e) == []


def test_failing_prepare_command_fails_the_base_with_its_code(e2e: E2E) -> None:
    run = e2e.build("failingPrepare")
    assert run.returncode != 0
    assert "preparing" in run.output  # the command's own output reached the log
    # The controller's reason, under the step that waited for it to be ready.
    assert re.search(
        r"step 1/5 \(wait_serial controller .*\) failed: VM controller failed: the preparing "
        r"command in the guest exited with code 4",
        run.output,
    ), run.output
    assert our_processes(e2e) == []


def test_install_deadline_holds(e2e: E2E) -> None:
    """An installer that cannot finish in time (1 s, x3 under TCG) fails at that deadline."""
    from .conftest import CONFIG

    short = CONFIG.format(name=f"{e2e.name}-short").replace("install = 120", "install = 1")
    run = e2e.build("installed", top=e2e.variant("short", short), timeout=300)
    e2e.timings["install, deadline 1 s x3 (nix-build)"] = run.seconds
    assert run.returncode != 0
    assert "the installer" in run.output and "deadline" in run.output, run.output
    assert "wingen[install]: stage failed" in run.output
    # The build log's last line (nix-build prints its tail above its own error) is the reason.
    ours = [line for line in run.output.splitlines() if "wingen[install]" in line]
    assert "stage failed: step 1/1 (wait_exit guest (the installer)) failed: deadline" in ours[-1]
    assert run.seconds < 60
    assert our_processes(e2e) == []


def test_install_with_kernel_modules_in_out(e2e: E2E) -> None:
    """nixos-24.05's layout: the kernel's modules in `out`, no `modules` output."""
    top = (e2e.dir / "top.nix").read_text()
    arg = "kernelRoot ="
    assert arg in top
    (e2e.dir / "top-2405.nix").write_text(top.replace(arg, "splitKernelModules = false; " + arg))
    run = e2e.build("installed", top="top-2405.nix")
    assert run.returncode == 0, run.output
    e2e.timings["install, modules in out (nix-build)"] = run.seconds
    assert (out_path(e2e, "installed") / "disk.qcow2").stat().st_size > 64 * 1024
