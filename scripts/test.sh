#!/usr/bin/env bash
# The whole test suite, install included: what the README tells you to run and what CI runs (.ci/run).
#   bash scripts/test.sh            # creates .venv if missing, installs pinned deps, checks, tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[dev]"
bash scripts/tools.sh               # helm + kubectl binaries (offline-capable once fetched)
export PATH="$PWD/.tools/bin:$PATH"

echo "== generated files are up to date"
bash scripts/generate.sh --check

echo "== every documented combination of extras installs (pip resolution, cached in .cache/extras)"
python scripts/check_extras.py

echo "== lint and types"
ruff check .
ruff format --check . || { echo "run: ruff format ."; exit 1; }
mypy

echo "== mutation testing, fast part: no more surviving mutants than recorded (docs/testing.md)"
bash scripts/mutation.sh --fast

echo "== tests"
# pytest exits 5 when it collects nothing: that is a failure too (set -e catches every non-zero code)
python -m pytest -q -p no:cacheprovider "$@"
