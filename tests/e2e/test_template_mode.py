"""`[snapshot] mode = "template"` reaches the stages: the base's guest keeps its RAM in a file
and saves as a template; every revive maps it.  Real Nix evaluates the rendered expression."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from wingen.runtime.derivation import Dirs, parse_record, plan
from wingen.runtime.spec import StageSpec, Step, VMSpec

from .conftest import CONFIG, E2E
from .test_render_eval import EXAMPLES, nix_eval, windows_example

pytestmark = pytest.mark.nix

PROBE = 'derivation { name = "x"; system = "x86_64-linux"; builder = "/bin/sh"; }'


def stage_plans(tmp: Path, guest: str, snapshot: dict[str, str]) -> list[StageSpec]:
    """The suspend (base) and run stages as the runtime plans them from the records that Nix
    evaluates for them."""
    from wingen.loader import parse_config
    from wingen.render import render

    example = EXAMPLES[guest] if guest == "linux" else windows_example(tmp / "example")
    data = tomllib.loads(example.read_text())
    data["snapshot"] = snapshot
    expr = tmp / f"{guest}.nix"
    expr.write_text(render(parse_config(data), example.parent).expression)
    top = f"(pkgs.callPackage {expr} {{ }})"
    records = nix_eval(tmp, f"[ {top}.base.wingen ({top}.runInVM ({PROBE})).wingen ]")
    assert isinstance(records, list)
    dirs = Dirs(work=tmp / "build", out=tmp / "out")
    return [plan(parse_record(r), dirs, "tcg") for r in records]


def guest_of(spec: StageSpec) -> VMSpec:
    return next(vm for vm in spec.vms if vm.name == "guest")


def save_of(spec: StageSpec) -> Step:
    return next(step for step in spec.steps if step.action == "save")


@pytest.mark.parametrize("guest", ["linux", "windows"])
def test_template_mode_saves_and_revives_a_template(tmp_path: Path, guest: str) -> None:
    base, revive = stage_plans(tmp_path, guest, {"mode": "template"})
    # Both VMs: RAM in a share=on file, saved as a template, revived from it.
    for vm in base.vms:
        assert vm.template is True, vm.name
    saves = [step for step in base.steps if step.action == "save"]
    assert [(s.target, s.compression) for s in saves] == [
        ("guest", "template"),
        ("controller", "template"),
    ]
    for vm in revive.vms:
        assert vm.restore is not None and vm.restore.compression == "template", vm.name
    restores = [str(vm.restore.path) for vm in revive.vms if vm.restore is not None]
    assert restores[0].endswith("-base/state")
    assert restores[1].endswith("-base/controller-state")


def test_compressed_mode_keeps_its_compression(tmp_path: Path) -> None:
    base, revive = stage_plans(tmp_path, "linux", {"compression": "gzip"})
    assert guest_of(base).template is False
    assert save_of(base).compression == "gzip"
    restore = guest_of(revive).restore
    assert restore is not None and restore.compression == "gzip"


@pytest.mark.e2e
def test_template_mode_base_revives_and_builds(e2e: E2E) -> None:
    """The e2e config in template mode, built sandboxed as a nixbld user: the revive maps the
    base's RAM file, read-only and owned by the store, in place."""
    name = f"{e2e.name}-template"
    config = CONFIG.format(name=name).replace(
        '[snapshot]\ncompression = "zstd"', '[snapshot]\nmode = "template"'
    )
    assert 'mode = "template"' in config
    top = e2e.variant("template", config)
    run = e2e.build("base", top=top, link="template-base")
    assert run.returncode == 0, run.output
    e2e.timings["template: install + suspend (nix-build)"] = run.seconds
    base = (e2e.dir / "template-base").resolve()
    ram = base / "state.ram"
    assert ram.stat().st_size == 256 << 20  # the guest's whole RAM (memory_mib = 256) ...
    assert ram.stat().st_blocks * 512 < ram.stat().st_size  # ... sparse where zero
    assert ram.stat().st_mode & 0o222 == 0  # the store made it read-only
    assert (base / "state").stat().st_size < 4 << 20  # device state only
    assert json.loads((base / "state.json").read_text())["compression"] == "template"
    # The controller is saved beside it, the same way (controller_memory_mib = 384).
    controller = base / "controller-state.ram"
    assert controller.stat().st_size == 384 << 20
    assert controller.stat().st_blocks * 512 < controller.stat().st_size
    assert json.loads((base / "controller-state.json").read_text())["compression"] == "template"

    run = e2e.build("ok", top=top, link="template-ok")
    assert run.returncode == 0, run.output
    e2e.timings["template: revive + build (nix-build)"] = run.seconds
    out = (e2e.dir / "template-ok").resolve()
    assert (out / "result.txt").read_text() == "written in the guest\n"
    assert "restore guest: loaded in" in run.output
    assert "restore controller: loaded in" in run.output
    assert "sparse copy" not in run.output  # QEMU 10: both mapped read-only, not copied
