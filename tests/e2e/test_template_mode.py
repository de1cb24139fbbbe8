"""`[snapshot] mode = "template"` reaches the stages: the base's guest keeps its RAM in a file
and saves as a template; every revive maps it.  Real Nix evaluates the rendered expression."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from .conftest import CONFIG, E2E, STANDIN
from .test_render_eval import EXAMPLES, nix_eval, windows_example

pytestmark = pytest.mark.nix

PROBE = 'derivation { name = "x"; system = "x86_64-linux"; builder = "/bin/sh"; }'


def stage_specs(tmp: Path, guest: str, snapshot: dict[str, str]) -> list[dict[str, Any]]:
    """The suspend (base) and run stages' runtime specs, as Nix evaluates them."""
    from wingen.loader import parse_config
    from wingen.render import render

    example = EXAMPLES[guest] if guest == "linux" else windows_example(tmp / "example")
    data = tomllib.loads(example.read_text())
    data["snapshot"] = snapshot
    expr = tmp / f"{guest}.nix"
    expr.write_text(render(parse_config(data), example.parent).expression)
    top = f"(pkgs.callPackage {expr} {{ }})"
    specs = nix_eval(tmp, f"[ {top}.base.wingenSpec ({top}.runInVM ({PROBE})).wingenSpec ]")
    assert isinstance(specs, list)
    return [json.loads(s) for s in specs]


def guest_of(spec: dict[str, Any]) -> dict[str, Any]:
    return next(vm for vm in spec["vms"] if vm["name"] == "guest")


def save_of(spec: dict[str, Any]) -> dict[str, Any]:
    return next(step for step in spec["steps"] if "save" in step)


@pytest.mark.parametrize("guest", ["linux", "windows"])
def test_template_mode_saves_and_revives_a_template(tmp_path: Path, guest: str) -> None:
    base, revive = stage_specs(tmp_path, guest, {"mode": "template"})
    assert guest_of(base)["template"] is True  # RAM in a share=on file: the save can keep it
    assert save_of(base)["compression"] == "template"
    assert guest_of(revive)["restore"]["compression"] == "template"
    assert guest_of(revive)["restore"]["from"].endswith("/state")


def test_compressed_mode_keeps_its_compression(tmp_path: Path) -> None:
    base, revive = stage_specs(tmp_path, "linux", {"compression": "gzip"})
    assert guest_of(base)["template"] is False
    assert save_of(base)["compression"] == "gzip"
    assert guest_of(revive)["restore"]["compression"] == "gzip"


TEMPLATE_TOP = """\
let
  pkgs = import {standin} {{ kernelRoot = {kernel}; }};
  w = pkgs.callPackage {rendered} {{ }};
in
{{
  templateBase = w.linuxBase;
  templateOk = w.runInLinuxVM (derivation {{
    name = "{name}-template-ok";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "mkdir $out && echo revived from a template > $out/result.txt" ];
  }});
}}
"""


@pytest.mark.e2e
def test_template_mode_base_revives_and_builds(e2e: E2E, kernel_root: Path) -> None:
    """The e2e config in template mode: same name, so the installed disk is the session's."""
    from wingen.loader import parse_config
    from wingen.render import render

    text = CONFIG.format(name=e2e.name).replace(
        '[snapshot]\ncompression = "zstd"', '[snapshot]\nmode = "template"'
    )
    assert 'mode = "template"' in text
    rendered = e2e.dir / "linux-template.nix"
    rendered.write_text(render(parse_config(tomllib.loads(text)), e2e.dir).expression)
    (e2e.dir / "top-template.nix").write_text(
        TEMPLATE_TOP.format(
            standin=STANDIN, kernel=f'"{kernel_root}"', rendered=rendered, name=e2e.name
        )
    )
    run = e2e.build("templateBase", top="top-template.nix")
    assert run.returncode == 0, run.output
    e2e.timings["template: suspend (nix-build)"] = run.seconds
    base = (e2e.dir / "templateBase").resolve()
    ram = base / "state.ram"
    assert ram.stat().st_size == 256 << 20  # the guest's whole RAM (memory_mib = 256) ...
    assert ram.stat().st_blocks * 512 < ram.stat().st_size  # ... sparse where zero
    assert (base / "state").stat().st_size < 4 << 20  # device state only
    assert json.loads((base / "state.json").read_text())["compression"] == "template"

    run = e2e.build("templateOk", top="top-template.nix")
    assert run.returncode == 0, run.output
    e2e.timings["template: revive + build (nix-build)"] = run.seconds
    result = (e2e.dir / "templateOk").resolve() / "result.txt"
    assert result.read_text() == "revived from a template\n"
    assert "restore guest: loaded in" in run.output
