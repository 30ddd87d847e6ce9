#!/usr/bin/env bash
# Regenerates every generated file (CRD, chart copies, values schema, gRPC stubs); --check fails on drift.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:---write}
python -m trtforge_runtime.spec.crd "$mode"
python scripts/generate_grpc.py "$mode"
python scripts/chart_values.py "$mode"   # chart: values.yaml, values.schema.json, the CRD template
python scripts/render_results.py "$mode"   # README.md, docs/*.md: figures from benchmarks/results/*.json
