#!/usr/bin/env bash
# Regenerates every generated file (CRD, chart copies, values schema, gRPC stubs); --check fails on drift.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:---write}
python -m trtforge_runtime.spec.crd "$mode"
