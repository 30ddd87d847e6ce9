"""The examples through the operator on the cluster in a box.

`kubectl apply` of the example; the real `trtforge operator` creates the training Job (for the custom
example: `trtforge train` running the user's entry point in a child process), the conversion Job and the
serving Deployment, each a real process; then the held-out rows go through the Service to the V2
endpoint, and the answers are compared with the model's own: a trained model's TensorFlow outputs (its
SavedModel, read from the artifact claim the Jobs wrote), an imported ONNX model's onnxruntime outputs.

An imported model reaches the conversion Job as a user puts it there: into a PersistentVolumeClaim of
the namespace (on a cluster: `kubectl cp` into a pod that mounts the claim; on the box the claim is a
folder, `volumes.claim_folder`), named by `spec.model.source.uri: pvc://CLAIM/PATH`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cluster_box.scenario import MD, BoxCluster
from cluster_box.volumes import claim_folder
from served_checks import ATOL, assert_same, infer_grpc, infer_http, onnxruntime_outputs, tensorflow_outputs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _apply_until_ready(
    c: BoxCluster, doc: dict[str, Any], tmp_path: Path, timeout: float = 420
) -> dict[str, Any]:
    path = tmp_path / "md.yaml"
    path.write_text(yaml.safe_dump(doc))
    c.kubectl("apply", "-f", str(path))
    name = doc["metadata"]["name"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = (c.get(*MD, name) or {}).get("status") or {}
        if st.get("phase") == "Failed":
            raise AssertionError(f"{name} failed: {json.dumps(st)[:3000]}\n{c.diagnose()}")
        if st.get("phase") == "Ready" and (st.get("serving") or {}).get("readyReplicas", 0) >= 1:
            return dict(st)
        c.check()
        time.sleep(0.3)
    raise AssertionError(f"{name} not Ready after {timeout:.0f} s\n{c.diagnose()}")


def _model_folder(c: BoxCluster, status: dict[str, Any]) -> Path:
    uri = status["model"]["uri"]  # pvc://CLAIM/PATH of the artifact store
    claim, _, sub = uri.removeprefix("pvc://").partition("/")
    assert c.box is not None
    return claim_folder(c.box.root, c.namespace, claim) / sub


def _url(c: BoxCluster, service: str) -> str:
    host, port, prefix = c.http_target(service)
    return f"http://{host}:{port}{prefix}"


def _run(tmp_path: Path, doc: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    name = doc["metadata"]["name"]
    c = BoxCluster(tmp_path)
    try:
        status = _apply_until_ready(c, doc, tmp_path)
        model_dir = _model_folder(c, status)
        manifest = json.loads((model_dir / "manifest.json").read_text())
        (inp,), (out,) = manifest["inputs"], manifest["outputs"]
        with np.load(model_dir / "samples.npz") as samples:
            x, y = samples["x_test"].astype(np.float32), samples["y_test"]
        served = infer_http(_url(c, name), name, {inp["name"]: x}, [out["name"]])[out["name"]]
        return status, served, tensorflow_outputs(model_dir, x), y
    finally:
        c.close()


def _example(name: str, epochs: int) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / name).read_text())
    doc["spec"]["model"]["train"]["epochs"] = epochs
    doc["spec"]["serving"]["resources"] = {"gpus": 0, "cpu": "1", "memory": "1Gi"}
    return dict(doc)


def test_custom_training_code_through_the_operator(tmp_path: Path) -> None:
    doc = _example("custom-train.yaml", epochs=8)
    custom = doc["spec"]["model"]["train"]["custom"]
    # the code as part of the image: no `code` to copy, the module on the image's Python path
    del custom["code"]
    custom["env"] = {"PYTHONPATH": str(REPO / "examples")}
    status, served, keras_out, y = _run(tmp_path, doc)
    assert status["model"]["accuracy"] >= 0.9
    np.testing.assert_allclose(served, keras_out, atol=1e-4)
    assert float(np.mean(served.argmax(1) == y)) >= 0.9


def test_regression_through_the_operator(tmp_path: Path) -> None:
    from trtforge_runtime import tasks

    status, served, tf_out, y = _run(tmp_path, _example("diabetes.yaml", epochs=40))
    assert served.shape == tf_out.shape == (len(y), 1)
    assert tasks.r2(tf_out, served) >= 0.999
    assert status["model"]["accuracy"] >= 0.3  # the headline metric of a regression model: test R²


def test_image_cnn_through_the_operator(tmp_path: Path) -> None:
    status, served, tf_out, y = _run(tmp_path, _example("digits-cnn.yaml", epochs=12))
    assert status["engine"]["precision"] == "fp16"
    assert served.shape == tf_out.shape == (len(y), 10)
    assert float(np.mean(served.argmax(1) == tf_out.argmax(1))) >= 0.99
    assert float(np.max(np.abs(served - tf_out))) <= 0.05  # the fp16 engine against fp32 TensorFlow


CLAIM = "models"  # the user's own claim for models brought from elsewhere


def _user_claim(c: BoxCluster, tmp_path: Path) -> Path:
    """`kubectl apply` of the user's PersistentVolumeClaim; its folder on the box."""
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    path = tmp_path / "pvc.yaml"
    path.write_text(yaml.safe_dump(pvc))
    c.kubectl("apply", "-f", str(path))
    assert c.box is not None
    return claim_folder(c.box.root, c.namespace, CLAIM)


def test_imported_onnx_model_with_two_outputs_from_a_claim_through_the_operator(tmp_path: Path) -> None:
    from trtforge_runtime.convert.source import dataset_samples
    from trtforge_runtime.spec.model import Dataset

    model = tmp_path / "iris-two-outputs.onnx"
    subprocess.run(
        [sys.executable, str(REPO / "examples" / "iris_two_outputs.py"), "-o", str(model)], check=True
    )
    doc = yaml.safe_load((REPO / "examples" / "iris-two-outputs.yaml").read_text())
    name, uri = doc["metadata"]["name"], f"pvc://{CLAIM}/iris/iris-two-outputs.onnx"
    doc["spec"]["model"]["source"]["uri"] = uri
    dataset = Dataset.model_validate(doc["spec"]["model"]["source"]["dataset"])
    x = dataset_samples(dataset, 42).x_test  # the rows the conversion's gate holds out
    assert x is not None and len(x) >= 30
    feeds = {"features": x.astype(np.float32)}
    want = onnxruntime_outputs(model, feeds)
    c = BoxCluster(tmp_path)
    try:
        folder = _user_claim(c, tmp_path) / "iris"
        folder.mkdir(parents=True)
        shutil.copyfile(model, folder / model.name)  # the box's `kubectl cp` into a pod of the claim
        status = _apply_until_ready(c, doc, tmp_path)
        url, grpc = _url(c, name), c.grpc_target(name)
        served = {
            "http": infer_http(url, name, feeds),
            "http, outputs species": infer_http(url, name, feeds, ["species"]),
            "grpc": infer_grpc(grpc, name, feeds),
            "grpc, outputs probabilities": infer_grpc(grpc, name, feeds, ["probabilities"]),
        }
    finally:
        c.close()
    assert status["model"]["uri"] == uri
    atol = ATOL[status["engine"]["precision"]]
    for how, outputs in served.items():
        expected = {k: want[k] for k in outputs} if "outputs" in how else want
        assert set(outputs) == set(expected), how
        assert_same(outputs, expected, atol)
    assert served["http"]["species"].dtype == np.int64


def test_two_input_custom_code_through_the_operator(tmp_path: Path) -> None:
    """examples/digits-two-inputs.yaml: the user's code trains a model of two inputs (8x8x1 image + 3
    tabular features) on its own data and writes its held-out rows per input; both inputs are served."""
    import keras

    doc = _example("digits-two-inputs.yaml", epochs=15)
    name, custom = doc["metadata"]["name"], doc["spec"]["model"]["train"]["custom"]
    del custom["code"]  # the code as part of the image, on its Python path
    custom["env"] = {"PYTHONPATH": str(REPO / "examples")}
    c = BoxCluster(tmp_path)
    try:
        status = _apply_until_ready(c, doc, tmp_path)
        model_dir = _model_folder(c, status)
        with np.load(model_dir / "samples.npz") as samples:
            rows = {n: samples[f"x_test.{n}"].astype(np.float32) for n in ("image", "tabular")}
            y = samples["y_test"]
        url, grpc = _url(c, name), c.grpc_target(name)
        served = {
            "http": infer_http(url, name, rows),
            "grpc": infer_grpc(grpc, name, rows),
            "grpc, outputs probabilities": infer_grpc(grpc, name, rows, ["probabilities"]),
        }
        # the framework's own answer: the model the user's code trained, loaded and run by Keras
        model = keras.models.load_model(model_dir / "model.keras", compile=False)
        want = {"probabilities": np.asarray(model.predict(rows, verbose=0))}
    finally:
        c.close()
    assert status["model"]["accuracy"] >= 0.9
    assert len(y) >= 300 and rows["image"].shape[1:] == (8, 8, 1) and rows["tabular"].shape[1:] == (3,)
    for outputs in served.values():
        assert_same(outputs, want, ATOL[status["engine"]["precision"]])
    probabilities = served["http"]["probabilities"]
    assert float(np.mean(probabilities.argmax(1) == want["probabilities"].argmax(1))) >= 0.98
    assert float(np.mean(probabilities.argmax(1) == y)) >= 0.85
