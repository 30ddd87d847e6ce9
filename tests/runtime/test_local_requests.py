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


def test_example_request_of_several_inputs_is_a_held_out_row_with_its_label(tmp_path: Path) -> None:
    """Custom code of several inputs publishes x_test.<input> and y_test: the request is that held-out row,
    each input in its own datatype, and the hint says what the answer should show."""
    path = tmp_path / "m.yaml"
    path.write_text((ROOT / "examples" / "digits-two-inputs.yaml").read_text())
    engine_doc = {
        "model": {
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [-1, 2, 2, 1]},
                {"name": "ids", "datatype": "INT32", "shape": [-1, 2]},
            ]
        },
        "referenceSample": {"inputs": {"image": {"shape": [1, 1], "datatype": "FP32", "data": [9.0]}}},
    }
    np.savez(
        tmp_path / "samples.npz",
        **{
            "x_test.image": np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1),
            "x_test.ids": np.array([[3, 4], [5, 6]], np.int32),
            "y_test": np.array([7, 1]),
        },
    )
    request, hint = write_example_request(load_manifest(path), engine_doc, tmp_path, tmp_path / "r.json")
    assert hint is not None and "whose label is 7" in hint
    assert json.loads(request.read_text())["inputs"] == [
        {"name": "image", "shape": [1, 2, 2, 1], "datatype": "FP32", "data": [0.0, 1.0, 2.0, 3.0]},
        {"name": "ids", "shape": [1, 2], "datatype": "INT32", "data": [3, 4]},
    ]


def test_example_request_of_one_integer_input_keeps_its_datatype(tmp_path: Path) -> None:
    """A model of one INT32 input (an Embedding) gets an INT32 request, not FP32 (which the server
    answers with 400: expected datatype INT32)."""
    path = tmp_path / "m.yaml"
    path.write_text((ROOT / "examples" / "custom-train.yaml").read_text())
    engine_doc = {"model": {"inputs": [{"name": "ids", "datatype": "INT32", "shape": [-1, 3]}]}}
    np.savez(tmp_path / "samples.npz", x_test=np.array([[1, 2, 3]], np.int32), y_test=np.array([2]))
    request, hint = write_example_request(load_manifest(path), engine_doc, tmp_path, tmp_path / "r.json")
    assert hint is not None and "whose label is 2" in hint
    assert json.loads(request.read_text())["inputs"] == [
        {"name": "ids", "shape": [1, 3], "datatype": "INT32", "data": [1, 2, 3]}
    ]
