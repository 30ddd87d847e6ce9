"""examples/iris-two-outputs.yaml: an imported ONNX model with two outputs, through `trtforge local`.

The example's own script writes the model (scikit-learn on the bundled iris data, no download); the
served answers for every iris row, both outputs, are compared with onnxruntime's on that model (the
framework's own answer): the class exactly, the probabilities within the chosen precision's tolerance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from served_checks import (
    ATOL,
    assert_same,
    free_port,
    infer_http,
    onnxruntime_outputs,
    start_local,
    stop,
)

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAME = "iris-two-outputs"


def test_imported_onnx_model_serves_both_outputs_as_onnxruntime_computes_them(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    model = tmp_path / "iris-two-outputs.onnx"
    subprocess.run([sys.executable, str(EXAMPLES / "iris_two_outputs.py"), "-o", str(model)], check=True)
    doc = yaml.safe_load((EXAMPLES / "iris-two-outputs.yaml").read_text())
    assert doc["spec"]["model"]["source"]["uri"] == "iris-two-outputs.onnx"  # next to the manifest
    manifest = tmp_path / "iris-two-outputs.yaml"
    manifest.write_text(yaml.safe_dump(doc))

    feeds = {"features": load_iris().data.astype(np.float32)}
    want = onnxruntime_outputs(model, feeds)

    port = free_port()
    proc = start_local(manifest, tmp_path / "work", tmp_path / "local.log", port, timeout=300)
    try:
        engine = json.loads((tmp_path / "work" / NAME / "engine" / "engine.json").read_text())
        url = f"http://127.0.0.1:{port}"
        both = infer_http(url, NAME, feeds)
        only = infer_http(url, NAME, feeds, ["species"])
    finally:
        stop(proc)
    assert [t["name"] for t in engine["model"]["outputs"]] == ["probabilities", "species"]
    chosen = next(c for c in engine["gate"]["candidates"] if c["precision"] == engine["precision"])
    assert {c["output"] for c in chosen["checks"]} == {"probabilities", "species"}
    assert_same(both, want, ATOL[engine["precision"]])
    assert_same(only, {"species": want["species"]}, ATOL[engine["precision"]])
    assert both["species"].dtype == np.int64
