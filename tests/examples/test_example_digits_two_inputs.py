"""examples/digits-two-inputs.yaml: a functional Keras model with two inputs (image + tabular features)
trained by the user's own code through spec.model.train.custom, straight from `trtforge local` (no
pre-step, no model file in the repository); the served answers for the code's held-out rows, given to
both inputs, are compared with what Keras itself predicts with the trained model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from served_checks import ATOL, assert_same, free_port, infer_http, start_local, stop

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAME = "digits-two-inputs"


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
    port = free_port()
    proc = start_local(EXAMPLES / f"{NAME}.yaml", work, tmp_path / "local.log", port)
    try:
        model_dir = work / NAME / "model"
        with np.load(model_dir / "samples.npz") as samples:
            rows = {n: samples[f"x_test.{n}"][:64] for n in ("image", "tabular")}
            labels = samples["y_test"][:64]
        served = infer_http(f"http://127.0.0.1:{port}", NAME, rows)
        engine = json.loads((work / NAME / "engine" / "engine.json").read_text())
        request_file = json.loads((work / NAME / "request.json").read_text())
    finally:
        stop(proc)
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
    assert_same(served, {"probabilities": want}, ATOL[engine["precision"]])
    probabilities = served["probabilities"]
    assert np.mean(probabilities.argmax(axis=1) == want.argmax(axis=1)) >= 0.98
    assert np.mean(probabilities.argmax(axis=1) == labels) >= 0.85
