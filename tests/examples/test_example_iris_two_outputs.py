"""examples/iris-two-outputs.yaml: an imported ONNX model with two outputs, through `trtforge local`.

The example's own script writes the model (scikit-learn on the bundled iris data, no download); the
served answers for every iris row, both outputs, are compared with onnxruntime's on that model (the
framework's own answer): the class exactly, the probabilities within the chosen precision's tolerance.
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
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAME = "iris-two-outputs"
ATOL = {"fp32": 1e-4, "fp16": 0.01, "int8": 0.05}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _trtforge() -> list[str]:
    exe = shutil.which("trtforge")
    return [exe] if exe else [sys.executable, "-m", "trtforge_runtime.cli"]


def _start(manifest: Path, workdir: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [*_trtforge(), "local", str(manifest), "--workdir", str(workdir), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--grpc-port", "0"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "try it" in text and "metrics:" in text:
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"trtforge local exited with {proc.returncode}:\n{text}")
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"trtforge local not ready:\n{log.read_text(errors='replace')}")


def _infer(port: int, body: dict[str, Any]) -> dict[str, np.ndarray]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/{NAME}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer = json.loads(resp.read())
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in answer["outputs"]}


def test_imported_onnx_model_serves_both_outputs_as_onnxruntime_computes_them(tmp_path: Path) -> None:
    import onnxruntime as ort
    from sklearn.datasets import load_iris

    model = tmp_path / "iris-two-outputs.onnx"
    subprocess.run([sys.executable, str(EXAMPLES / "iris_two_outputs.py"), "-o", str(model)], check=True)
    doc = yaml.safe_load((EXAMPLES / "iris-two-outputs.yaml").read_text())
    assert doc["spec"]["model"]["source"]["uri"] == "iris-two-outputs.onnx"  # next to the manifest
    manifest = tmp_path / "iris-two-outputs.yaml"
    manifest.write_text(yaml.safe_dump(doc))

    x = load_iris().data.astype(np.float32)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want_p, want_s = sess.run(["probabilities", "species"], {"features": x})

    port = _free_port()
    proc = _start(manifest, tmp_path / "work", tmp_path / "local.log", port)
    try:
        engine = json.loads((tmp_path / "work" / NAME / "engine" / "engine.json").read_text())
        features = {
            "name": "features",
            "shape": list(x.shape),
            "datatype": "FP32",
            "data": x.ravel().tolist(),
        }
        both = _infer(port, {"inputs": [features]})
        only = _infer(port, {"inputs": [features], "outputs": [{"name": "species"}]})
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert [t["name"] for t in engine["model"]["outputs"]] == ["probabilities", "species"]
    chosen = next(c for c in engine["gate"]["candidates"] if c["precision"] == engine["precision"])
    assert {c["output"] for c in chosen["checks"]} == {"probabilities", "species"}
    assert set(both) == {"probabilities", "species"} and set(only) == {"species"}
    np.testing.assert_array_equal(both["species"], want_s)
    np.testing.assert_array_equal(only["species"], want_s)
    np.testing.assert_allclose(both["probabilities"], want_p, atol=ATOL[engine["precision"]])
