"""An imported model on a real cluster, put where the conversion Job reads it as docs/operator.md says.

The commands of "Imported models in a cluster": a PersistentVolumeClaim `models`, a busybox pod that mounts
it, `kubectl cp` of the ONNX file written by examples/iris_two_outputs.py, the pod deleted, then
examples/iris-two-outputs.yaml applied with `source.uri: pvc://models/iris/iris-two-outputs.onnx`. Once
Ready, held-out iris rows go to the Service over HTTP (both outputs, and `outputs` naming one) and gRPC,
compared with onnxruntime on the source model: the class exactly, the probabilities within the engine's
precision. Runs in the session's release and namespace (conftest.py); skipped with the reason when
KUBECONFIG reaches no cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from e2e.cluster import Cluster, node_compute_capabilities
from e2e.e2elib import get_path, wait_for
from e2e.loop_cluster import RealCluster
from served_checks import ATOL, assert_same, infer_grpc, infer_http, onnxruntime_outputs

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NAME = "iris-two-outputs"
CLAIM, UPLOADER = "models", "models-upload"
URI = f"pvc://{CLAIM}/iris/iris-two-outputs.onnx"
PVC = f"""apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {CLAIM}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"""
OVERRIDES = {
    "apiVersion": "v1",
    "spec": {
        "containers": [
            {
                "name": UPLOADER,
                "image": "busybox:1.36",
                "command": ["sleep", "3600"],
                "volumeMounts": [{"name": CLAIM, "mountPath": "/models"}],
            }
        ],
        "volumes": [{"name": CLAIM, "persistentVolumeClaim": {"claimName": CLAIM}}],
    },
}


def _manifest(cluster: Cluster) -> dict[str, Any]:
    """The example with the pvc:// URI (the docs' sed), adapted to a GPU run like the digits manifest."""
    text = (REPO / "examples" / "iris-two-outputs.yaml").read_text()
    doc: dict[str, Any] = yaml.safe_load(text.replace("uri: iris-two-outputs.onnx", f"uri: {URI}"))
    settings, engine = cluster.settings, doc["spec"]["engine"]
    backend = settings.effective_backend(engine["backend"])
    engine["backend"] = backend
    if backend == "onnxruntime":
        engine.pop("computeCapabilities", None)
    elif backend == "tensorrt" or settings.compute_capabilities:
        engine["computeCapabilities"] = settings.compute_capabilities or node_compute_capabilities(cluster)
    engine["resources"]["gpus"] = 1 if backend == "tensorrt" else 0
    doc["spec"]["serving"]["resources"]["gpus"] = 1 if settings.gpu else 0
    return doc


def _put_model_on_the_claim(cluster: Cluster, model: Path) -> None:
    ns, kubectl = cluster.namespace, cluster.kubectl
    kubectl.run("apply", "-n", ns, "-f", "-", stdin=PVC)
    overrides = f"--overrides={json.dumps(OVERRIDES)}"
    kubectl.run("run", "-n", ns, UPLOADER, "--image=busybox:1.36", "--restart=Never", overrides)
    try:
        ready = ("--for=condition=Ready", f"pod/{UPLOADER}", "--timeout=300s")
        kubectl.run("wait", "-n", ns, *ready, timeout=330)
        kubectl.run("exec", "-n", ns, UPLOADER, "--", "mkdir", "-p", "/models/iris")
        kubectl.run("cp", str(model), f"{ns}/{UPLOADER}:/models/iris/iris-two-outputs.onnx", timeout=300)
    finally:
        kubectl.run("delete", "pod", "-n", ns, UPLOADER, "--ignore-not-found", "--wait=true", timeout=300)


def test_imported_two_output_model_from_a_claim(cluster: Cluster, release: str, tmp_path: Path) -> None:
    from trtforge_runtime.convert.source import dataset_samples
    from trtforge_runtime.spec.model import Dataset

    model = tmp_path / "iris-two-outputs.onnx"
    script = REPO / "examples" / "iris_two_outputs.py"
    subprocess.run([sys.executable, str(script), "-o", str(model)], check=True)
    doc = _manifest(cluster)
    x = dataset_samples(Dataset.model_validate(doc["spec"]["model"]["source"]["dataset"]), 42).x_test
    assert x is not None
    feeds = {"features": x.astype(np.float32)}
    want = onnxruntime_outputs(model, feeds)

    _put_model_on_the_claim(cluster, model)
    real = RealCluster(cluster, release, NAME)  # deletes the ModelDeployment when closed
    try:
        cluster.kubectl.run("apply", "-n", cluster.namespace, "-f", "-", stdin=yaml.safe_dump(doc))

        def ready() -> dict[str, Any] | None:
            md = cluster.get_md(NAME)
            if get_path(md, "status", "phase") == "Failed":
                raise AssertionError(f"{NAME} failed: {get_path(md, 'status')}\n{cluster.diagnose(NAME)}")
            ok = get_path(md, "status", "phase") == "Ready"
            return md if ok and (get_path(md, "status", "serving", "readyReplicas") or 0) >= 1 else None

        md = wait_for(
            f"{NAME} Ready", ready, cluster.settings.ready_timeout, 5, lambda: cluster.diagnose(NAME)
        )
        host, port, prefix = real.http_target(NAME)  # the serving Service is named after the model
        url, grpc = f"http://{host}:{port}{prefix}", real.grpc_target(NAME)
        served = {
            "http": infer_http(url, NAME, feeds),
            "http, outputs species": infer_http(url, NAME, feeds, ["species"]),
            "grpc": infer_grpc(grpc, NAME, feeds),
            "grpc, outputs probabilities": infer_grpc(grpc, NAME, feeds, ["probabilities"]),
        }
    finally:
        real.close()
        ns = cluster.namespace
        cluster.kubectl.run("delete", "pvc", "-n", ns, CLAIM, "--ignore-not-found", check=False)
    assert get_path(md, "status", "model", "uri") == URI
    atol = ATOL[get_path(md, "status", "engine", "precision")]
    for how, outputs in served.items():
        assert_same(outputs, {k: want[k] for k in outputs} if "outputs" in how else want, atol)
        assert set(outputs) == ({how.split()[-1]} if "outputs" in how else {"probabilities", "species"})
