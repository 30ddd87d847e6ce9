"""Sources keep the trained tensor names, or take the spec's: served and called by that name over V2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from trtforge_runtime.convert import source

sys.path.insert(0, str(Path(__file__).parents[1] / "serve"))
from serve_support import serve

pytestmark = pytest.mark.slow


def _infer(url: str, model: str, x: np.ndarray, output: str) -> dict[str, Any]:
    body = {
        "inputs": [
            {"name": "pixels", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ],
        "outputs": [{"name": output}],
    }
    request = urllib.request.Request(
        f"http://{url}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _serve_and_call(engine: Path, x: np.ndarray, output: str) -> np.ndarray:
    server = serve(engine)
    try:
        reply = _infer(server.url, "digits", x, output)
    finally:
        server.stop()
    assert [o["name"] for o in reply["outputs"]] == [output]
    return np.array(reply["outputs"][0]["data"], np.float32).reshape(reply["outputs"][0]["shape"])


def _convert_source(tmp_path: Path, tools: Any, src: dict[str, Any]) -> Path:
    spec = tmp_path / "s.yaml"
    engine = {"backend": "onnxruntime", "precision": "fp32", "accuracy": {"maxTop1Drop": 0.0}}
    spec.write_text(yaml.safe_dump(tools.manifest(engine, {"source": src})))
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    return tmp_path / "e"


def test_onnx_source_output_renamed_by_the_spec_is_served_under_that_name(
    tmp_path: Path, model_dir: Path, tools: Any
) -> None:
    exported = tmp_path / "exported.onnx"
    shutil.copyfile(model_dir / "model.onnx", exported)
    source.rename_output(exported, "probabilities", "output_0")  # what Keras's default export calls it
    src = {"uri": str(exported), "format": "onnx", "outputName": "probabilities"}
    engine = _convert_source(tmp_path, tools, src)
    doc = tools.read(engine)
    assert [o["name"] for o in doc["model"]["outputs"]] == ["probabilities"]
    assert list(doc["referenceSample"]["outputs"]) == ["probabilities"]
    x = np.load(model_dir / "samples.npz")["x_test"][:3]
    got = _serve_and_call(engine, x, "probabilities")
    assert got.shape == (3, 10) and np.allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_output_name_that_is_not_an_output_of_a_multi_output_model(tmp_path: Path) -> None:
    from trtforge_runtime.errors import ArtifactError
    from trtforge_runtime.tensors import TensorInfo

    outs = [TensorInfo("a", (-1, 2), "FP32"), TensorInfo("b", (-1, 2), "FP32")]
    assert [t.name for t in source.select_output(tmp_path / "unused.onnx", outs, "b")] == ["b", "a"]
    with pytest.raises(ArtifactError, match=r"outputName 'c' is not an output of the model.*\['a', 'b'\]"):
        source.select_output(tmp_path / "unused.onnx", outs, "c")


def test_trained_savedmodel_keeps_its_output_name(tmp_path: Path, model_dir: Path, tools: Any) -> None:
    """`trtforge train`'s SavedModel export names its signature output after the model's output layer, so
    a SavedModel source serves `probabilities`, not Keras's default `output_0`."""
    pytest.importorskip("keras")
    saved = tmp_path / "saved_model"
    script = (
        "import keras; from pathlib import Path; "
        "from trtforge_runtime.train.export import export_saved_model; keras.utils.set_random_seed(0); "
        "i = keras.Input((64,), name='pixels'); h = keras.layers.Dense(16, activation='relu')(i); "
        "o = keras.layers.Dense(10, activation='softmax', name='probabilities')(h); "
        f"export_saved_model(keras.Model(i, o), Path({str(saved)!r}))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    engine = _convert_source(tmp_path, tools, {"uri": str(saved), "format": "savedmodel"})
    assert [o["name"] for o in tools.read(engine)["model"]["outputs"]] == ["probabilities"]
    x = np.load(model_dir / "samples.npz")["x_test"][:2]
    assert _serve_and_call(engine, x, "probabilities").shape == (2, 10)
