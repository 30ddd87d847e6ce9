"""Each example runs with `trtforge local` and serves what TensorFlow/Keras itself predicts.

For every example: the manifest as shipped (fewer epochs, or as it is), `trtforge local` in a subprocess,
then the held-out test rows go to the V2 endpoint over HTTP and the answers are compared with the trained
model's own outputs (its SavedModel's serving signature, run by TensorFlow) on the same rows, within
the precision the engine was built at. The data comes from scikit-learn's bundled datasets: nothing is
downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from served_checks import free_port, infer_http, start_local, stop, tensorflow_outputs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _manifest(tmp_path: Path, name: str, epochs: int | None) -> tuple[Path, dict[str, Any]]:
    """The example in tmp_path (epochs None: as shipped), with a dataset file given relative to the
    manifest copied beside it."""
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    train = doc["spec"]["model"]["train"]
    if epochs is not None:
        train["epochs"] = epochs
    uri = train["dataset"]["uri"]
    if "://" not in uri and not uri.startswith("/"):
        shutil.copy(EXAMPLES / uri, tmp_path / uri)
    custom = train.get("custom")
    if custom and custom.get("code"):
        custom["code"] = str(EXAMPLES / custom["code"])  # the copy lives elsewhere; the code stays here
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path, doc


def _run_example(
    tmp_path: Path, name: str, epochs: int | None
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    manifest, doc = _manifest(tmp_path, name, epochs)
    model_name = doc["metadata"]["name"]
    workdir = tmp_path / "work"
    port = free_port()
    proc = start_local(manifest, workdir, tmp_path / "local.log", port)
    try:
        model_dir = workdir / model_name / "model"
        engine = json.loads((workdir / model_name / "engine" / "engine.json").read_text())
        (inp,), (out,) = engine["model"]["inputs"], engine["model"]["outputs"]
        with np.load(model_dir / "samples.npz") as samples:
            x, y = samples["x_test"].astype(np.float32), samples["y_test"]
        answer = infer_http(f"http://127.0.0.1:{port}", model_name, {inp["name"]: x}, [out["name"]])
    finally:
        stop(proc)
    assert list(answer) == [out["name"]] and answer[out["name"]].dtype == np.float32
    return engine, answer[out["name"]], tensorflow_outputs(model_dir, x), y


def test_digits_cnn_serves_what_keras_predicts(tmp_path: Path) -> None:
    engine, served, keras_out, y = _run_example(tmp_path, "digits-cnn.yaml", epochs=12)
    assert engine["model"]["inputs"][0]["shape"] == [-1, 8, 8, 1]  # the 64 pixels as an 8x8x1 image
    assert served.shape == keras_out.shape == (len(y), 10)
    assert float(np.mean(served.argmax(1) == keras_out.argmax(1))) >= 0.99
    assert float(np.max(np.abs(served - keras_out))) <= 0.05  # fp16 engine against fp32 Keras
    assert float(np.mean(served.argmax(1) == y)) >= 0.9


def test_diabetes_regression_serves_what_keras_predicts(tmp_path: Path) -> None:
    from trtforge_runtime import tasks

    engine, served, keras_out, y = _run_example(tmp_path, "diabetes.yaml", epochs=40)
    gate = engine["gate"]
    chosen = next(c for c in gate["candidates"] if c["precision"] == engine["precision"])
    assert gate["task"] == "regression" and {c["metric"] for c in chosen["checks"]} == {"r2", "mae"}
    assert served.shape == keras_out.shape == (len(y), 1)
    assert tasks.r2(keras_out, served) >= 0.999  # the example's engine.accuracy.minR2
    assert float(np.mean(np.abs(served - keras_out))) <= 1.0  # its maxMae, in target units
    assert tasks.scores("regression", served, y)["r2"] >= 0.3  # still a model of the data


def test_custom_training_code_serves_what_keras_predicts(tmp_path: Path) -> None:
    engine, served, keras_out, y = _run_example(tmp_path, "custom-train.yaml", epochs=8)
    assert engine["model"]["inputs"][0]["name"] == "pixels"
    assert engine["model"]["outputs"][0]["name"] == "probabilities"
    np.testing.assert_allclose(served, keras_out, atol=1e-4)  # fp32 onnxruntime against Keras
    assert float(np.mean(served.argmax(1) == y)) >= 0.9


def test_iris_csv_as_shipped_passes_its_int8_gate_and_serves_what_keras_predicts(tmp_path: Path) -> None:
    """The README's `trtforge local examples/iris-csv.yaml`, unchanged: its int8 gate judges 30 test rows,
    so a maxTop1Drop below one row (3.3%) refused the example's own engine."""
    engine, served, keras_out, y = _run_example(tmp_path, "iris-csv.yaml", epochs=None)
    assert engine["precision"] == "int8" and engine["rejected"] == []
    assert served.shape == keras_out.shape == (len(y), 3)
    assert float(np.mean(served.argmax(1) == keras_out.argmax(1))) >= 0.95  # int8 against fp32 Keras
    assert float(np.max(np.abs(served - keras_out))) <= 0.1  # the example's maxAbsDiff
    assert float(np.mean(served.argmax(1) == y)) >= 0.9
