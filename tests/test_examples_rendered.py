"""The renders committed beside the examples (which the flake's packages and checks use, so that
they evaluate without import-from-derivation) are what the examples render to now."""

from __future__ import annotations

import pytest

from helpers import ROOT, wingen


@pytest.mark.parametrize("name", ["linux", "wingen"])
def test_committed_render_is_current(name: str) -> None:
    proc = wingen("render", "-c", f"examples/{name}.toml", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    committed = (ROOT / "examples" / f"{name}.nix").read_text(encoding="utf-8")
    assert proc.stdout == committed, (
        f"examples/{name}.nix is stale: run "
        f"`wingen render -c examples/{name}.toml -o examples/{name}.nix`"
    )


def test_flake_template_holds_the_example_config_and_its_current_render() -> None:
    """`nix flake init -t` copies nix/template: real files (a symlink would dangle there)."""
    template = ROOT / "nix" / "template"
    config = template / "wingen.toml"
    assert not config.is_symlink()
    init = (ROOT / "templates" / "init" / "windows.toml").read_text(encoding="utf-8")
    assert config.read_text(encoding="utf-8") == init
    proc = wingen("render", "-c", str(config), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (template / "wingen.nix").read_text(encoding="utf-8"), (
        "nix/template/wingen.nix is stale: run `wingen render -c wingen.toml -o wingen.nix` there"
    )
