#!/usr/bin/env bash
# Mutation testing (mutmut) of the modules that decide, in a temporary copy of this checkout.
#   bash scripts/mutation.sh                  # all modules; writes benchmarks/results/mutation.json
#   bash scripts/mutation.sh autoscaler       # one module (gate precision batcher autoscaler status crd)
#   bash scripts/mutation.sh --fast           # what CI runs: one module, fails if more mutants survive
# See docs/testing.md ("Mutation testing"); render the docs afterwards: python scripts/render_results.py
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || { [ -x .venv/bin/python ] && . .venv/bin/activate; }
exec python scripts/mutation.py "$@"
