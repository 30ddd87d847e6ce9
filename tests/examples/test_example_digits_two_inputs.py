"""examples/digits-two-inputs.yaml: a functional Keras model with two inputs (image + tabular features)
trained by the user's own code through spec.model.train.custom, straight from `trtforge local` (no
pre-step, no model file in the repository); the served answers for the code's held-out rows, given to
both inputs, are compared with what Keras itself predicts with the trained model."""

from __future__ import annotations

import importlib.util
import json
import signal
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAME = "digits-two-inputs"
ATOL = {"fp32": 1e-4, "fp16": 0.01, "int8": 0.05}


def _module(path: Path, name: str) -> ModuleType:
    """A module by file path (the iris example test's `trtforge local` helpers)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


local = _module(Path(__file__).with_name("test_example_iris_two_outputs.py"), "iris_two_outputs_test")


def _infer(port: int, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    body = {
        "inputs": [
            {"name": n, "shape": list(a.shape), "datatype": "FP32", "data": a.ravel().tolist()}
            for n, a in inputs.items()
        ]
    }
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/{NAME}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def test_the_example_is_custom_code_with_its_own_data() -> None:
    doc = yaml.safe_load((EXAMPLES / f"{NAME}.yaml").read_text())
    train = doc["spec"]["model"]["train"]
    assert "source" not in doc["spec"]["model"] and "dataset" not in train
    assert train["custom"]["entryPoint"] == "digits_two_inputs:train"
    assert train["custom"]["code"] == "digits_two_inputs.py"
    assert ".keras" not in (EXAMPLES / f"{NAME}.yaml").read_text()  # no model file built beforehand


def test_two_input_custom_code_serves_what_keras_predicts(tmp_path: Path) -> None:
    import keras

    work = tmp_path / "work"
    port = local._free_port()
    proc = local._start(EXAMPLES / f"{NAME}.yaml", work, tmp_path / "local.log", port)
    try:
        model_dir = work / NAME / "model"
        with np.load(model_dir / "samples.npz") as samples:
            rows = {n: samples[f"x_test.{n}"][:64] for n in ("image", "tabular")}
            labels = samples["y_test"][:64]
        out = _infer(port, rows)["outputs"]
        engine = json.loads((work / NAME / "engine" / "engine.json").read_text())
        request_file = json.loads((work / NAME / "request.json").read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert [(t["name"], t["shape"], t["datatype"]) for t in manifest["inputs"]] == [
        ("image", [-1, 8, 8, 1], "FP32"),
        ("tabular", [-1, 3], "FP32"),
    ]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["gate"]["passed"] and metrics["test"]["accuracy"] >= 0.9
    assert metrics["onnxParity"]["rows"] == len(np.load(model_dir / "samples.npz")["y_test"])
    assert metrics["onnxParity"]["maxAbsDiff"] < 1e-4
    assert [(t["name"], t["shape"]) for t in engine["model"]["inputs"]] == [
        ("image", [-1, 8, 8, 1]),
        ("tabular", [-1, 3]),
    ]
    assert engine["gate"]["data"] == "test"  # the conversion gate ran on the code's held-out rows
    assert [t["name"] for t in request_file["inputs"]] == ["image", "tabular"]  # the curl example

    # the framework's own answer: the model the user's code trained, loaded and run by Keras
    model = keras.models.load_model(model_dir / "model.keras", compile=False)
    want = np.asarray(model.predict(rows, verbose=0))
    (served_out,) = out
    assert served_out["name"] == "probabilities"
    served = np.asarray(served_out["data"], np.float32).reshape(served_out["shape"])
    np.testing.assert_allclose(served, want, atol=ATOL[engine["precision"]])
    assert np.mean(served.argmax(axis=1) == want.argmax(axis=1)) >= 0.98
    assert np.mean(served.argmax(axis=1) == labels) >= 0.85
