#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: lint, types, then every test (e2e included).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
mypy --strict
python3 -m pytest "$@"
