"""The command line as a user runs it: a process, its output, its files and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, wingen
from wingen import __version__


def test_version() -> None:
    proc = wingen("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"wingen {__version__}"


@pytest.mark.parametrize("guest", ["windows", "linux"])
def test_init_writes_a_valid_config_and_refuses_to_overwrite(guest: str, tmp_path: Path) -> None:
    config = tmp_path / "wingen.toml"
    assert wingen("init", "-c", str(config), "--guest", guest).returncode == 0
    text = config.read_text()
    assert text.lstrip().startswith("#"), "the example explains itself"
    assert wingen("check", "-c", str(config)).returncode == 0
    again = wingen("init", "-c", str(config))
    assert again.returncode == 2
    assert again.stderr.startswith(f"error: {config}: already exists")
    assert config.read_text() == text


def test_render_to_stdout_file_and_directory(tmp_path: Path) -> None:
    example = str(ROOT / "examples" / "wingen.toml")
    stdout = wingen("render", "-c", example)
    assert stdout.returncode == 0, stdout.stderr
    single = tmp_path / "default.nix"
    assert wingen("render", "-c", example, "-o", str(single)).returncode == 0
    assert single.read_text() == stdout.stdout
    outdir = tmp_path / "tree"
    proc = wingen("render", "-c", example, "-o", f"{outdir}/")
    assert proc.returncode == 0, proc.stderr
    assert (outdir / "default.nix").is_file()
    for path in (single, outdir / "default.nix"):
        parse = subprocess.run(["nix-instantiate", "--parse", str(path)], capture_output=True)
        assert parse.returncode == 0, parse.stderr
    leftovers = [p for p in tmp_path.rglob(".*.tmp")]
    assert leftovers == []


def test_schema_is_json_schema_of_the_config() -> None:
    proc = wingen("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema["type"] == "object"
    assert {"windows", "vm", "network", "cygwin", "snapshot", "deadlines"} <= set(
        schema["properties"]
    )
    assert schema.get("additionalProperties") is False


def test_usage_error_exits_2() -> None:
    proc = wingen("render", "--no-such-flag")
    assert proc.returncode == 2


def test_render_never_creates_a_missing_home(tmp_path: Path) -> None:
    """Nix builds run with HOME=/homeless-shelter, which must stay absent (the flake renders in
    one); compiled templates are cached only under a home that exists."""
    home = tmp_path / "homeless-shelter"
    example = str(ROOT / "examples" / "linux.toml")
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT / "generator")}
    env.pop("XDG_CACHE_HOME", None)
    for extra in ({}, {"NIX_BUILD_TOP": str(tmp_path)}):
        proc = subprocess.run(
            [sys.executable, "-m", "wingen.cli", "render", "-c", example],
            env=env | extra, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert not home.exists()
