"""spec.model.source.dataset for an imported model of several inputs: an .npz with one array per input
(`x.<input>`, the samples.npz convention `x_test.<input>`) feeds the gate and the int8 calibration.

The model is multi_io.py's ONNX graph with the inputs `image` FP32 [-1, 4, 4], `tabular` FP16 [-1, 3] and
`site` INT64 [-1, 1] (an embedding row) and the outputs `probabilities` and `score`; it is written with
onnx.helper in tmp_path, so these tests run without TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import multi_io
import numpy as np
import pytest
import yaml

INPUTS = ("image", "tabular", "site")
ROWS = 600


def _dataset(tmp_path: Path, rows: int = ROWS, **override: Any) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """The model, and an .npz of its inputs' rows labelled with the fp32 model's own classes. Row i of
    every input carries i (image[i, 0, 0] = tabular[i, 0] = i / rows), so a row of the gate shows
    whether its inputs come from the same example."""
    model = multi_io.build(tmp_path / "m.onnx", inputs=INPUTS)
    x = multi_io.feeds(rows, seed=4, inputs=INPUTS)
    x["image"][:, 0, 0] = np.arange(rows) / rows
    x["tabular"] = x["tabular"].astype(np.float32)  # float32 rows for the FP16 input: cast as it is
    x["tabular"][:, 0] = np.arange(rows) / rows
    x["site"] = x["site"].astype(np.float64)  # whole numbers stored as floats feed the INT64 input
    feeds = {n: a.astype(multi_io.NUMPY[multi_io.INPUTS[n][0]]) for n, a in x.items()}
    y = multi_io.reference(model, feeds)["probabilities"].argmax(axis=1)
    arrays = {f"x.{n}": a for n, a in x.items()} | {"y": y}
    arrays.update(override)
    data = tmp_path / "data.npz"
    np.savez(data, **{k: v for k, v in arrays.items() if v is not None})
    return model, data, feeds


def _spec(tmp_path: Path, tools: Any, model: Path, data: Path, **engine: Any) -> Path:
    source = {"source": {"uri": model.name, "format": "onnx", "dataset": {"uri": data.name}}}
    eng = {"backend": "onnxruntime", "accuracy": {"maxTop1Drop": 0.05, "maxAbsDiff": 0.5, "samples": 512}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tools.manifest(eng | engine, source, name="multi")))
    return path


def test_int8_calibrates_and_gates_every_output_on_the_datasets_rows_of_each_input(
    tmp_path: Path, tools: Any
) -> None:
    model, data, feeds = _dataset(tmp_path)
    spec = _spec(tmp_path, tools, model, data, precision="int8")
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    gate = doc["gate"]
    assert doc["precision"] == "int8" and gate["data"] == "test"
    assert gate["samples"] == 120  # testSplit 0.2 of 600 rows
    # calibration: the training split (600 - 120 test - 96 validation), 6 batches of 64
    assert gate["calibration"]["rows"] == 384 and gate["calibration"]["origin"] == "data.npz"
    (candidate,) = gate["candidates"]
    assert {c["output"] for c in candidate["checks"]} == {"probabilities", "score"}
    # the labels are the fp32 model's classes: the reference accuracy on the test split is exact
    assert gate["referenceAccuracy"] == 1.0
    # every gate row holds one example's rows of every input (the same permutation for each input)
    sample = doc["referenceSample"]["inputs"]
    image = np.array(sample["image"]["data"], np.float32).reshape(sample["image"]["shape"])
    tabular = np.array(sample["tabular"]["data"], np.float32).reshape(sample["tabular"]["shape"])
    site = np.array(sample["site"]["data"]).reshape(sample["site"]["shape"])
    rows = np.rint(image[:, 0, 0] * ROWS).astype(int)
    np.testing.assert_allclose(tabular[:, 0] * ROWS, rows, atol=0.3)  # FP16 rows: 1/2048 steps
    np.testing.assert_array_equal(site[:, 0], feeds["site"][rows, 0])
    assert sample["site"]["datatype"] == "INT64" and sample["tabular"]["datatype"] == "FP16"


@pytest.mark.parametrize(("method", "max_abs_diff"), [("minmax", 0.5), ("percentile", 0.5), ("entropy", 1.0)])
def test_best_picks_int8_calibrated_by_each_method_on_the_datasets_rows(
    tmp_path: Path, tools: Any, method: str, max_abs_diff: float
) -> None:
    """Every calibrator takes the rows of every input (entropy clips the unbounded `score` output the
    most: about 0.83 off on these rows, so its bound is looser)."""
    model, data, _ = _dataset(tmp_path)
    accuracy = {"maxTop1Drop": 0.05, "maxAbsDiff": max_abs_diff, "samples": 512}
    spec = _spec(
        tmp_path, tools, model, data, precision="best", calibration={"method": method}, accuracy=accuracy
    )
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["precision"] == "int8" and doc["gate"]["data"] == "test"
    assert doc["gate"]["calibration"]["method"] == method and doc["gate"]["calibration"]["rows"] == 384
    assert [c["precision"] for c in doc["gate"]["candidates"]] == ["int8"]  # the first candidate passed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"x.site": None}, "has no rows for input 'site' (expected x.site; keys: x.image, x.tabular, y)"),
        ({"x.weather": np.zeros((ROWS, 2))}, "x.weather names no input of the model (its inputs: image, "),
        ({"x.site": np.zeros((ROWS - 1, 1))}, "row counts (x.image 600, x.tabular 600, x.site 599, y 600)"),
        ({"x.image": np.zeros((ROWS, 16))}, "x.image has shape [600, 16], but the model takes input 'image'"),
        ({"x.site": np.full((ROWS, 1), 0.5)}, "x.site holds float64 values such as 0.5, which the model"),
        ({"x": np.zeros((ROWS, 20))}, "has both 'x' and ['x.image', 'x.site', 'x.tabular']; keep one"),
    ],
    ids=["missing-input", "extra-key", "row-counts", "shape", "dtype", "both"],
)
def test_a_dataset_that_does_not_fit_the_inputs_is_refused_naming_the_key(
    tmp_path: Path, tools: Any, capsys: Any, override: dict[str, Any], message: str
) -> None:
    model, data, _ = _dataset(tmp_path, **override)
    spec = _spec(tmp_path, tools, model, data, precision="fp32")
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 3  # a dataset error
    err = capsys.readouterr().err
    assert "dataset data.npz" in err and message in err
    assert not (tmp_path / "e").exists()


def test_one_features_array_for_a_model_of_several_inputs_says_what_is_expected(
    tmp_path: Path, tools: Any, capsys: Any
) -> None:
    model = multi_io.build(tmp_path / "m.onnx", inputs=INPUTS)
    np.savez(tmp_path / "data.npz", x=np.zeros((50, 20), np.float32), y=np.zeros(50, np.int64))
    spec = _spec(tmp_path, tools, model, tmp_path / "data.npz", precision="fp32")
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 3
    assert (
        "dataset data.npz has one features array 'x', but the model has 3 inputs (image, tabular, site): "
        "give one array per input under x.image, x.tabular, x.site (the same rows of each)"
    ) in capsys.readouterr().err


def test_a_regression_model_of_several_inputs_is_gated_on_its_datasets_float_targets(
    tmp_path: Path, tools: Any
) -> None:
    """task regression: y holds float targets (the fp32 model's score), the gate checks R² per output."""
    model, data, feeds = _dataset(tmp_path)
    with np.load(data) as arrays:
        kept = {k: arrays[k] for k in arrays.files if k != "y"}
    np.savez(data, **kept, y=multi_io.reference(model, feeds)["score"][:, 0].astype(np.float64))
    source = {
        "source": {"uri": model.name, "format": "onnx", "outputName": "score", "dataset": {"uri": "data.npz"}}
    }
    doc = tools.manifest({"backend": "onnxruntime", "precision": "best"}, {"task": "regression", **source})
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc))
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    gate = tools.read(tmp_path / "e")["gate"]
    assert gate["task"] == "regression" and gate["data"] == "test" and gate["samples"] == 120
    assert gate["referenceAccuracy"] == pytest.approx(1.0)  # R² of the fp32 score on its own targets
    chosen = next(c for c in gate["candidates"] if c["precision"] == gate["chosen"])
    assert {(c["output"], c["metric"]) for c in chosen["checks"]} >= {
        ("score", "r2"),
        ("probabilities", "r2"),
    }


def test_trtforge_local_serves_the_int8_model_calibrated_on_the_dataset(tmp_path: Path, tools: Any) -> None:
    """`trtforge local` of the imported model with its dataset: converted to int8 on the dataset's rows,
    served with every input in its own datatype, answering as the int8 network does in onnxruntime and
    with the fp32 model's classes on the dataset's rows."""
    from served_checks import assert_same, free_port, infer_http, onnxruntime_outputs, start_local, stop

    model, data, feeds = _dataset(tmp_path)
    spec = _spec(tmp_path, tools, model, data, precision="int8")
    port = free_port()
    proc = start_local(spec, tmp_path / "work", tmp_path / "local.log", port, timeout=300)
    try:
        rows = {n: a[:64] for n, a in feeds.items()}
        served = infer_http(f"http://127.0.0.1:{port}", "multi", rows)
    finally:
        stop(proc)
    engine = tmp_path / "work" / "multi" / "engine"
    doc = tools.read(engine)
    assert doc["precision"] == "int8" and doc["gate"]["calibration"]["origin"] == "data.npz"
    assert_same(served, onnxruntime_outputs(engine / "onnxruntime" / "model.onnx", rows), atol=1e-4)
    fp32 = multi_io.reference(model, rows)
    agree = np.mean(served["probabilities"].argmax(1) == fp32["probabilities"].argmax(1))
    assert agree >= 0.95, agree
