"""`[snapshot] mode = "template"` reaches the stages: the base's guest keeps its RAM in a file
and saves as a template; every revive maps it.  Real Nix evaluates the rendered expression."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

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
