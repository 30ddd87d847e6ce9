"""examples/digits-two-inputs.yaml: a functional Keras model with two inputs (image + tabular features),
trained by the example's own script on the bundled digits, imported as a .keras file, through
`trtforge local`; the served answers for held-out rows are compared with what Keras itself predicts."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAME = "digits-two-inputs"
ATOL = {"fp32": 1e-4, "fp16": 0.01, "int8": 0.05}


def _module(path: Path, name: str) -> ModuleType:
    """A module by file path (the example's script; the iris example test's `trtforge local` helpers)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


local = _module(Path(__file__).with_name("test_example_iris_two_outputs.py"), "iris_two_outputs_test")


def test_two_input_keras_model_serves_what_keras_predicts(tmp_path: Path) -> None:
    import keras

    model_file = tmp_path / "digits-two-inputs.keras"
    script = EXAMPLES / "digits_two_inputs.py"
    subprocess.run([sys.executable, str(script), "-o", str(model_file), "--epochs", "3"], check=True)
    doc = yaml.safe_load((EXAMPLES / "digits-two-inputs.yaml").read_text())
    assert doc["spec"]["model"]["source"] == {"uri": "digits-two-inputs.keras", "format": "keras"}
    manifest = tmp_path / "digits-two-inputs.yaml"
    manifest.write_text(yaml.safe_dump(doc))

    images, tabular, _ = _module(script, "digits_two_inputs_example").features()
    images, tabular = images[:64], tabular[:64]
    want = np.asarray(
        keras.models.load_model(model_file, compile=False).predict([images, tabular], verbose=0)
    )

    port = local._free_port()
    proc = local._start(manifest, tmp_path / "work", tmp_path / "local.log", port)
    try:
        engine = json.loads((tmp_path / "work" / NAME / "engine" / "engine.json").read_text())
        body = {
            "inputs": [
                {
                    "name": "image",
                    "shape": list(images.shape),
                    "datatype": "FP32",
                    "data": images.ravel().tolist(),
                },
                {
                    "name": "tabular",
                    "shape": list(tabular.shape),
                    "datatype": "FP32",
                    "data": tabular.ravel().tolist(),
                },
            ]
        }
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/models/{NAME}/infer",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            (out,) = json.loads(resp.read())["outputs"]
        request_file = json.loads((tmp_path / "work" / NAME / "request.json").read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert [(t["name"], t["shape"]) for t in engine["model"]["inputs"]] == [
        ("image", [-1, 8, 8, 1]),
        ("tabular", [-1, 3]),
    ]
    assert [t["name"] for t in request_file["inputs"]] == ["image", "tabular"]  # the curl example
    served = np.asarray(out["data"], np.float32).reshape(out["shape"])
    np.testing.assert_allclose(served, want, atol=ATOL[engine["precision"]])
    assert np.mean(served.argmax(axis=1) == want.argmax(axis=1)) >= 0.98
