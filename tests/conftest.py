"""Shared test set-up: import wingen from this checkout, whatever is installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "generator"))


@pytest.fixture(scope="session")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A placeholder kernel tree: enough for the rendered Nix to instantiate (not to boot)."""
    root = tmp_path_factory.mktemp("kernel")
    (root / "lib" / "modules" / "6.1.0-0-amd64").mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "boot" / "vmlinuz-6.1.0-0-amd64").write_bytes(b"")
    return root
