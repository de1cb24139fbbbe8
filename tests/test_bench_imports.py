"""The README's bench commands need only the package (`pip install .`): no bench imports pytest,
directly or through the tests' modules it shares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

# The script's directory first, as `python3 bench/X.py` has it; pytest made unimportable.
LOAD = """\
import runpy, sys
sys.path.insert(0, sys.argv[1])
sys.modules["pytest"] = None
sys.modules["_pytest"] = None
runpy.run_path(sys.argv[2], run_name="bench_import_check")
"""


@pytest.mark.parametrize("bench", sorted(p.name for p in BENCH.glob("*.py")))
def test_bench_loads_without_pytest(bench: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", LOAD, str(BENCH), str(BENCH / bench)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
