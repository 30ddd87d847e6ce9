#!/usr/bin/env bash
# The real-cluster end-to-end tests (tests/e2e, docs/e2e.md) on a throwaway kind cluster, in one command:
# create the cluster, build the images and load them into it, run the tests, delete the cluster.
#   bash scripts/e2e-kind.sh                  # needs docker and kind on PATH
#   KEEP_CLUSTER=1 bash scripts/e2e-kind.sh   # keep the cluster (and its KUBECONFIG) for a look afterwards
#   bash scripts/e2e-kind.sh -k loop          # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${CLUSTER:-trtforge-e2e}
REGISTRY=${REGISTRY:-localhost}
TAG=${TAG:-e2e}
for tool in docker kind; do
  command -v "$tool" >/dev/null || { echo "$tool not found on PATH (docs/e2e.md)" >&2; exit 1; }
done

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC1091  # created just above
. .venv/bin/activate
python -m pip install -q -e ".[dev]"
bash scripts/tools.sh                       # helm + kubectl into .tools/bin
export PATH="$PWD/.tools/bin:$PATH"

KUBECONFIG=$(mktemp)
export KUBECONFIG
cleanup() {
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "kept kind cluster $CLUSTER; KUBECONFIG=$KUBECONFIG"
  else
    kind delete cluster --name "$CLUSTER" || true
    rm -f "$KUBECONFIG"
  fi
}
trap cleanup EXIT
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 180s
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG"

for image in operator trainer converter server; do
  docker build -f "docker/$image.Dockerfile" -t "$REGISTRY/trtforge/$image:$TAG" .
  kind load docker-image --name "$CLUSTER" "$REGISTRY/trtforge/$image:$TAG"
done

TRTFORGE_E2E_IMAGE_REGISTRY=$REGISTRY TRTFORGE_E2E_IMAGE_TAG=$TAG \
  python -m pytest -m e2e tests/e2e -rs -v -p no:cacheprovider "$@"
