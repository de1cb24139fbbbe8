"""`[snapshot] mode`: validated, and `wingen check` says what each mode costs."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import ROOT, wingen


def config_with(tmp_path: Path, snapshot: str) -> Path:
    text = (ROOT / "examples" / "linux.toml").read_text()
    text = text.replace('[snapshot]\ncompression = "zstd"\n', f"[snapshot]\n{snapshot}\n")
    assert snapshot in text
    config = tmp_path / "wingen.toml"
    config.write_text(text)
    return config


def test_check_says_what_template_mode_costs(tmp_path: Path) -> None:
    proc = wingen("check", "-c", str(config_with(tmp_path, 'mode = "template"')))
    assert proc.returncode == 0, proc.stderr
    assert "template: revive ≈ constant" in proc.stdout
    # examples/linux.toml: a 512 MiB guest and the default 512 MiB controller, both saved.
    assert "stores 512 + 512 MiB of RAM (guest + controller) uncompressed" in proc.stdout


@pytest.mark.parametrize(
    ("snapshot", "says"),
    [
        ('compression = "zstd"', "compressed (zstd): revive grows with the RAM in use"),
        ('compression = "gzip"', "several times slower than zstd"),
        ('mode = "compressed"\ncompression = "none"', "NARs are all 512 + 512 MiB"),
    ],
)
def test_check_says_what_compressed_modes_cost(tmp_path: Path, snapshot: str, says: str) -> None:
    proc = wingen("check", "-c", str(config_with(tmp_path, snapshot)))
    assert proc.returncode == 0, proc.stderr
    assert says in proc.stdout


def test_compression_with_template_mode_is_an_error(tmp_path: Path) -> None:
    config = config_with(tmp_path, 'mode = "template"\ncompression = "zstd"')
    proc = wingen("check", "-c", str(config))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line
    assert "snapshot.compression" in line
    assert "'zstd' has no effect with mode = \"template\"" in line
    assert 'use mode = "compressed"' in line


def test_unknown_mode_is_an_error(tmp_path: Path) -> None:
    proc = wingen("check", "-c", str(config_with(tmp_path, 'mode = "mapped"')))
    assert proc.returncode == 2
    assert "snapshot.mode" in proc.stderr
