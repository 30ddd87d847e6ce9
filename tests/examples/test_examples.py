"""Each example runs with `trtforge local` and serves what TensorFlow/Keras itself predicts.

For every example: the manifest as shipped (fewer epochs, or as it is), `trtforge local` in a subprocess,
then the held-out test rows go to the V2 endpoint over HTTP and the answers are compared with the trained
model's own outputs (its SavedModel's serving signature, run by TensorFlow) on the same rows, within
the precision the engine was built at. The data comes from scikit-learn's bundled datasets: nothing is
downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _trtforge() -> list[str]:
    exe = shutil.which("trtforge")
    return [exe] if exe else [sys.executable, "-m", "trtforge_runtime.cli"]


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


def _serve(manifest: Path, workdir: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [*_trtforge(), "local", str(manifest), "--workdir", str(workdir), "--port", str(port)]
    cmd += ["--grpc-port", "0"]
    out = log.open("wb")
    proc = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )
    deadline = time.monotonic() + 500
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "try it" in text and "metrics:" in text:
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"trtforge local exited with {proc.returncode}:\n{text}")
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"trtforge local not ready:\n{log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def _tensorflow_outputs(model_dir: Path, x: np.ndarray) -> np.ndarray:
    """The trained model's own answer: its SavedModel's serving signature, run by TensorFlow."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir / "saved_model"))
    sig = loaded.signatures["serving_default"]
    (arg,) = sig.structured_input_signature[1]
    (out,) = sig(**{arg: tf.constant(x)}).values()
    return np.asarray(out)


def _infer_json(port: int, model: str, input_name: str, output_name: str, x: np.ndarray) -> np.ndarray:
    """One V2 JSON request (the wire format a curl user sends) with every row."""
    import urllib.request

    body = {
        "inputs": [
            {"name": input_name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ],
        "outputs": [{"name": output_name}],
    }
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer = json.loads(resp.read())
    (output,) = answer["outputs"]
    assert output["name"] == output_name and output["datatype"] == "FP32"
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def _run_example(
    tmp_path: Path, name: str, epochs: int | None
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    manifest, doc = _manifest(tmp_path, name, epochs)
    model_name = doc["metadata"]["name"]
    workdir = tmp_path / "work"
    port = _free_port()
    proc = _serve(manifest, workdir, tmp_path / "local.log", port)
    try:
        model_dir = workdir / model_name / "model"
        engine = json.loads((workdir / model_name / "engine" / "engine.json").read_text())
        (inp,), (out,) = engine["model"]["inputs"], engine["model"]["outputs"]
        with np.load(model_dir / "samples.npz") as samples:
            x, y = samples["x_test"].astype(np.float32), samples["y_test"]
        served = _infer_json(port, model_name, inp["name"], out["name"], x)
    finally:
        _stop(proc)
    return engine, served, _tensorflow_outputs(model_dir, x), y


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
