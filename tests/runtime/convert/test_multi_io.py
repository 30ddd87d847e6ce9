"""Models with several named, typed inputs and several outputs through `trtforge convert`.

The model (multi_io.py) takes FP32, FP16, INT64, INT32 and BOOL inputs and has two outputs; the gate
judges every output, int8 calibrates on one array per input, and inputs that do not match (samples with
a missing input, a BYTES input) are refused with a message naming the input.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import multi_io
import numpy as np
import pytest
import yaml
from trtforge_runtime.convert import precision


def _spec(tmp_path: Path, tools: Any, model: Path, **engine: Any) -> Path:
    src = {"source": {"uri": str(model), "format": "onnx"}}
    eng = {"accuracy": {"maxTop1Drop": 0.05, "samples": 128}} | engine
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tools.manifest(eng, src, name="multi")))
    return path


def _model_folder(out: Path, onnx_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A `trtforge train`-style folder: model.onnx, manifest.json (digest), samples.npz."""
    out.mkdir(parents=True)
    data = onnx_path.read_bytes()
    (out / "model.onnx").write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (out / "manifest.json").write_text(json.dumps({"digest": digest}))
    np.savez(out / "samples.npz", **arrays)  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt-rtx"])
def test_typed_inputs_and_two_outputs_convert_and_gate_per_output(
    tmp_path: Path, tools: Any, backend: str
) -> None:
    model = multi_io.build(tmp_path / "m.onnx")
    spec = _spec(tmp_path, tools, model, backend=backend, precision="best")
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert [(t["name"], t["datatype"]) for t in doc["model"]["inputs"]] == [
        (n, dt) for n, (dt, _) in multi_io.INPUTS.items()
    ]
    assert [t["name"] for t in doc["model"]["outputs"]] == ["probabilities", "score"]
    assert doc["precision"] == "fp16" and doc["gate"]["data"] == "synthetic"
    chosen = next(c for c in doc["gate"]["candidates"] if c["precision"] == "fp16")
    assert {c["output"] for c in chosen["checks"]} == {"probabilities", "score"}
    assert set(chosen["outputs"]) == {"probabilities", "score"}
    sample = doc["referenceSample"]
    assert {n: t["datatype"] for n, t in sample["inputs"].items()} == {
        n: dt for n, (dt, _) in multi_io.INPUTS.items()
    }
    assert all(isinstance(v, bool) for v in sample["inputs"]["flag"]["data"])
    # the reference outputs are the fp16 network's answers on those rows, close to the fp32 model's
    feeds = {
        n: np.array(t["data"], dtype=multi_io.NUMPY[t["datatype"]]).reshape(t["shape"])
        for n, t in sample["inputs"].items()
    }
    want = multi_io.reference(model, feeds)
    for name, t in sample["outputs"].items():
        got = np.array(t["data"], np.float32).reshape(t["shape"])
        np.testing.assert_allclose(got, want[name], atol=0.02)


def test_a_failing_second_output_rejects_the_precision(tmp_path: Path, tools: Any, capsys: Any) -> None:
    """The score output (not probabilities) is what fails a tight maxAbsDiff: the message names it."""
    model = multi_io.build(tmp_path / "m.onnx")
    spec = _spec(
        tmp_path,
        tools,
        model,
        backend="onnxruntime",
        precision="fp16",
        accuracy={"maxTop1Drop": 0.05, "maxAbsDiff": 0.001, "samples": 128},
    )
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") != 0
    err = capsys.readouterr().err
    assert "output 'score': maxAbsDiff" in err and "output 'probabilities': maxAbsDiff" not in err
    assert not (tmp_path / "e").exists()


def test_int8_calibrates_on_one_array_per_input(tmp_path: Path, tools: Any) -> None:
    model = multi_io.build(tmp_path / "m.onnx")
    test, calib = multi_io.feeds(200, seed=2), multi_io.feeds(256, seed=3)
    arrays = {f"x_test.{n}": a for n, a in test.items()} | {f"x_calib.{n}": a for n, a in calib.items()}
    folder = _model_folder(tmp_path / "model", model, arrays)
    spec = _spec(
        tmp_path,
        tools,
        model,
        backend="tensorrt-rtx",
        precision="int8",
        accuracy={"maxTop1Drop": 0.1, "maxAbsDiff": 0.5, "samples": 200},
    )
    assert tools.run(spec, folder, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["precision"] == "int8" and doc["gate"]["data"] == "test" and doc["gate"]["samples"] == 200
    assert doc["gate"]["calibration"]["rows"] == 256


def test_samples_without_one_of_the_inputs_are_refused(tmp_path: Path, tools: Any, capsys: Any) -> None:
    model = multi_io.build(tmp_path / "m.onnx")
    test = multi_io.feeds(20)
    del test["count"]
    folder = _model_folder(tmp_path / "model", model, {f"x_test.{n}": a for n, a in test.items()})
    spec = _spec(tmp_path, tools, model, backend="onnxruntime", precision="fp32")
    assert tools.run(spec, folder, tmp_path / "e", tmp_path / "c") != 0
    err = capsys.readouterr().err
    assert "do not match the model's inputs" in err and "missing ['count']" in err


def test_one_sample_array_for_a_model_of_several_inputs_is_refused(
    tmp_path: Path, tools: Any, capsys: Any
) -> None:
    model = multi_io.build(tmp_path / "m.onnx")
    folder = _model_folder(tmp_path / "model", model, {"x_test": np.zeros((4, 16), np.float32)})
    spec = _spec(tmp_path, tools, model, backend="onnxruntime", precision="fp32")
    assert tools.run(spec, folder, tmp_path / "e", tmp_path / "c") != 0
    assert "samples.npz has x_test.<input> and x_calib.<input>" in capsys.readouterr().err


def test_a_string_input_is_refused_naming_it(tmp_path: Path, tools: Any, capsys: Any) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["text"], ["text_out"]),
            helper.make_node("Identity", ["x"], ["y"]),
        ],
        "strings",
        [
            helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", 1]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2]),
        ],
        [
            helper.make_tensor_value_info("text_out", TensorProto.STRING, ["batch", 1]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "s.onnx"
    onnx.save(model, str(path))
    spec = _spec(tmp_path, tools, path, backend="onnxruntime", precision="fp32")
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") != 0
    assert "model input 'text' is BYTES (strings)" in capsys.readouterr().err


def test_fp16_keeps_integer_boolean_and_half_inputs_castable(tmp_path: Path) -> None:
    """onnxconverter-common retypes a Cast's output to half but keeps `to` = float: the transform fixes
    the attribute, so onnxruntime loads the network (it refused it before)."""
    import onnx
    from onnx import TensorProto

    model = multi_io.build(tmp_path / "m.onnx")
    half = precision.transform(model, "fp16", tmp_path / "h.onnx", input_name=None, calib=None)
    casts = [n for n in onnx.load(str(half)).graph.node if n.op_type == "Cast" and "_f" in n.output[0]]
    assert casts and all(a.i == TensorProto.FLOAT16 for n in casts for a in n.attribute if a.name == "to")
    feeds = multi_io.feeds(8)
    got, want = multi_io.reference(half, feeds), multi_io.reference(model, feeds)
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=0.01)


def test_a_dataset_for_a_model_of_several_inputs_is_refused_naming_why(
    tmp_path: Path, tools: Any, capsys: Any
) -> None:
    pytest.importorskip("trtforge_runtime.train.datasets", reason="the training engineer's dataset module")
    model = multi_io.build(tmp_path / "m.onnx")
    src = {"source": {"uri": str(model), "format": "onnx", "dataset": {"uri": "builtin://iris"}}}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tools.manifest({"backend": "onnxruntime", "precision": "fp32"}, src)))
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") != 0
    err = capsys.readouterr().err
    assert (
        "dataset builtin://iris (spec.model.source.dataset) holds one feature array, but the model has 5 "
        "inputs (image, tabular, site, count, flag): give an .npz with one array per input under x.image, "
        "x.tabular, x.site, x.count, x.flag (the same rows of each) and the labels under 'y'"
    ) in err
    assert not (tmp_path / "e").exists()
