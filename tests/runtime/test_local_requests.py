"""`trtforge local`'s example request for a model with several inputs: one row of every input, typed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from trtforge_runtime.local import write_example_request
from trtforge_runtime.spec.load import load_manifest

ROOT = Path(__file__).resolve().parents[2]


def test_example_request_of_a_model_with_several_typed_inputs(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text((ROOT / "examples" / "iris-two-outputs.yaml").read_text())
    engine_doc = {
        "model": {"inputs": [{"name": "image"}, {"name": "site"}, {"name": "flag"}]},
        "referenceSample": {
            "inputs": {
                "image": {"shape": [2, 2, 2], "datatype": "FP32", "data": [0.5, 1, 2, 3, 4, 5, 6, 7]},
                "site": {"shape": [2, 1], "datatype": "INT64", "data": [3, 4]},
                "flag": {"shape": [2, 1], "datatype": "BOOL", "data": [True, False]},
            }
        },
    }
    # a samples.npz with one array per input (no x_test) must not be read as a single input's rows
    np.savez(tmp_path / "samples.npz", **{"x_test.site": np.zeros((2, 1), np.int64)})
    request, hint = write_example_request(load_manifest(path), engine_doc, tmp_path, tmp_path / "r.json")
    assert hint is None
    body = json.loads(request.read_text())
    assert body["inputs"] == [
        {"name": "image", "shape": [1, 2, 2], "datatype": "FP32", "data": [0.5, 1, 2, 3]},
        {"name": "site", "shape": [1, 1], "datatype": "INT64", "data": [3]},
        {"name": "flag", "shape": [1, 1], "datatype": "BOOL", "data": [True]},
    ]
    assert yaml.safe_load(path.read_text())["metadata"]["name"] == "iris-two-outputs"
