"""`wingen init` writes the bundled examples: one source (examples/*.toml link to them)."""

from __future__ import annotations

from helpers import ROOT


def test_examples_are_the_init_templates() -> None:
    pairs = {"wingen.toml": "windows.toml", "linux.toml": "linux.toml"}
    for example, init in pairs.items():
        path = ROOT / "examples" / example
        assert path.is_symlink()
        assert path.resolve() == (ROOT / "templates" / "init" / init).resolve()
