"""Time `wingen render` of the bundled example as a whole process (interpreter start included).

Prints each figure and, last, `render_median=<s> target=0.3 ratio=<median/target>
python_startup=<s>`: the bare interpreter's start-up is the floor no import trimming goes below.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.3
RUNS = int(os.environ.get("RUNS", "21"))


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_of(argv: list[str], env: dict[str, str]) -> float:
    timed(argv, env)  # warm the page cache and .pyc files
    return statistics.median(timed(argv, env) for _ in range(RUNS))


def main() -> None:
    # Byte-compile the checkout first, as `pip install` does for an installed wingen: with
    # PYTHONDONTWRITEBYTECODE set (as here) every run would otherwise compile every module anew.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "generator")], check=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "generator"))
    example = str(ROOT / "examples" / "wingen.toml")
    render = median_of([sys.executable, "-m", "wingen.cli", "render", "-c", example], env)
    floor = median_of([sys.executable, "-c", "pass"], env)
    print(f"runs={RUNS} example={example}")
    print(
        f"render_median={render:.3f} target={TARGET} ratio={render / TARGET:.2f} "
        f"python_startup={floor:.3f}"
    )


if __name__ == "__main__":
    main()
