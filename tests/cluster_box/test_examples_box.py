"""The CNN, regression and custom-training examples through the operator on the cluster in a box.

`kubectl apply` of the example; the real `trtforge operator` creates the training Job (for the custom
example: `trtforge train` running the user's entry point in a child process), the conversion Job and the
serving Deployment, each a real process; then the held-out rows go through the Service to the V2
endpoint, and the answers are compared with the trained model's own TensorFlow outputs (its SavedModel,
read from the artifact claim the Jobs wrote).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cluster_box.scenario import MD, BoxCluster
from cluster_box.volumes import claim_folder

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


def _served(c: BoxCluster, name: str, input_name: str, output_name: str, x: np.ndarray) -> np.ndarray:
    host, port, _ = c.http_target(name)
    body = {
        "inputs": [
            {"name": input_name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ],
        "outputs": [{"name": output_name}],
    }
    req = urllib.request.Request(
        f"http://{host}:{port}/v2/models/{name}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        (out,) = json.loads(resp.read())["outputs"]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


def _tensorflow(model_dir: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    sig = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
    (arg,) = sig.structured_input_signature[1]
    (out,) = sig(**{arg: tf.constant(x)}).values()
    return np.asarray(out)


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
        served = _served(c, name, inp["name"], out["name"], x)
        return status, served, _tensorflow(model_dir, x), y
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
