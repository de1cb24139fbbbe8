"""VM stages go where the `kvm` feature is: Nix's own distributed building, on one machine.

The local machine here is a second nix-daemon on /nix/store whose system-features lack `kvm`; its
`builders` names an `ssh-ng://` builder (tests/e2e/sshbuilder.py) that offers `kvm` and takes
nothing else, with a store of its own. The base that builder makes is copied back and then
revived by the session's daemon, on the local store."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import E2E, FEATURES, stdout_of
from .nixdaemon import nix_conf, start_daemon
from .sshbuilder import URI, SshBuilder, start_builder
from .test_pipeline import out_path, stage_seconds, unprivileged

pytestmark = pytest.mark.e2e


@dataclass
class Dispatch:
    builder: SshBuilder
    env: dict[str, str]  # a client of the kvm-less local daemon
    top: str  # a config of its own: every stage in it is new


@pytest.fixture(scope="module")
def dispatch(e2e: E2E) -> Iterator[Dispatch]:
    builder = start_builder(e2e.dir / "builder", e2e.kernel_root, FEATURES, mandatory="kvm")
    try:
        local = e2e.dir / "kvm-less"
        without_kvm = [f for f in FEATURES if f != "kvm"]
        extra = {"builders": builder.machine}
        conf = nix_conf(
            local / "nix-conf", e2e.kernel_root, system_features=without_kvm, extra=extra
        )
        daemon = start_daemon(conf, local, {"NIX_SSHOPTS": builder.sshopts})
        try:
            yield Dispatch(builder, daemon.env, e2e.variant("remote"))
        finally:
            daemon.stop()
    finally:
        builder.stop()


def path_info(env: dict[str, str], path: str, *store: str) -> dict[str, object]:
    [info] = json.loads(stdout_of(env, "nix", "path-info", "--json", *store, path))
    assert isinstance(info, dict) and "narHash" in info, info  # valid ({"valid": false} if not)
    return info


def test_a_machine_without_kvm_refuses_vm_stages(e2e: E2E, dispatch: Dispatch) -> None:
    """No builder: Nix's own scheduling error, before any VM starts."""
    run = e2e.build("featureless", "--option", "builders", "", env=dispatch.env)
    assert run.returncode != 0
    required = re.search(r"with features \{[^}]*kvm[^}]*\} is required to build", run.output)
    assert required, run.output
    assert "wingen[" not in run.output
    assert not run.vms


def test_vm_stages_build_on_the_builder_that_offers_kvm(e2e: E2E, dispatch: Dispatch) -> None:
    e2e.repaired_inputs("base", dispatch.top)  # what goes to the builder must verify there
    run = e2e.build("base", top=dispatch.top, env=dispatch.env, link="remote-base")
    assert run.returncode == 0, run.output
    e2e.timings["install + suspend on the builder (nix-build)"] = run.seconds
    for stage in ("install", "suspend"):
        e2e.timings[f"{stage} on the builder (stage)"] = stage_seconds(run.output, stage) or -1
    stages = {
        stage: e2e.instantiate(attr, dispatch.top)
        for stage, attr in (("install", "installed"), ("suspend", "base"))
    }
    # Nix says where it built them, and built nothing else there.
    remote = set(re.findall(r"building '([^']+)' on '([^']+)'", run.output))
    assert remote == {(drv, URI) for drv, _ in stages.values()}, run.output
    # Their VMs ran as build users, inside sandboxes of the builder's store.
    builder = ["--store", str(dispatch.builder.store)]
    names = {Path(drv).name[33:].removesuffix(".drv") for drv, _ in stages.values()}  # no hash
    assert {vm.drv for vm in run.vms} == names, run.vms
    for vm in run.vms:
        assert unprivileged(vm) and vm.store == f"{dispatch.builder.store}/nix/store", vm
    for stage, (drv, out) in stages.items():
        # Built there: valid in the builder's store, marked as built there, with its log there.
        there = path_info(e2e.env, out, *builder)
        assert there.get("ultimate") is True, there
        assert f"wingen[{stage}]" in stdout_of(e2e.env, "nix-store", *builder, "--read-log", drv)
        # Handed over: in the local store as a copy, not as a build.
        here = path_info(e2e.env, out)
        assert "ultimate" not in here, here
        assert here["narHash"] == there["narHash"]


def test_the_builders_base_revives_on_the_local_store(e2e: E2E, dispatch: Dispatch) -> None:
    """The session's daemon (which has kvm) revives the copied base and builds in it."""
    _, base = e2e.instantiate("base", dispatch.top)
    assert "ultimate" not in path_info(e2e.env, base)  # the builder's, copied here
    run = e2e.build("ok", top=dispatch.top, link="remote-ok")
    assert run.returncode == 0, run.output
    e2e.timings["revive of the builder's base, locally (nix-build)"] = run.seconds
    assert " on 'ssh-ng://" not in run.output
    assert run.vms and all(unprivileged(vm) and vm.store == "/nix/store" for vm in run.vms)
    out = out_path(e2e, "remote-ok")
    assert (out / "result.txt").read_text() == "written in the guest\n"
    assert "building in wingen-guest" in run.output
    # The builder never saw this build.
    there = subprocess.run(
        ["nix", "path-info", "--store", str(dispatch.builder.store), str(out)],
        env=e2e.env,
        capture_output=True,
        check=False,
    )
    assert there.returncode != 0
