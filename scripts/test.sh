#!/usr/bin/env bash
# The whole test suite, install included: what the README tells you to run and what CI runs (.ci/run).
#   bash scripts/test.sh            # creates .venv if missing, installs pinned deps, checks, tests
#   bash scripts/test.sh --help     # what it does, and how to pass arguments on to pytest
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: bash scripts/test.sh [PYTEST-ARGS...]

The whole test suite, install included (what CI runs through .ci/run):
  1. creates .venv when missing (with $PYTHON, default python3) and installs ".[dev]" into it
  2. fetches helm and kubectl into .tools/bin (scripts/tools.sh)
  3. checks the generated files (scripts/generate.sh --check) and the documented extras
     (scripts/check_extras.py)
  4. ruff check, ruff format --check, mypy
  5. mutation testing, fast part (scripts/mutation.sh --fast)
  6. pytest, with PYTEST-ARGS passed on as they are

examples:
  bash scripts/test.sh                        # everything
  bash scripts/test.sh -m "not slow"          # skip the tests that train or build real models
  bash scripts/test.sh tests/charts -x        # steps 1-5, then one folder of tests

  -h, --help   print this help and exit (runs nothing)
USAGE
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac

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
