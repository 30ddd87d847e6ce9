"""Precision transforms, the accuracy gate and the reference sample, with real onnx/onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from trtforge_runtime.convert import engine_json, gate, precision
from trtforge_runtime.errors import ConversionError


@pytest.fixture(scope="module")
def samples(model_dir: Path) -> dict[str, np.ndarray]:
    with np.load(model_dir / "samples.npz") as data:
        return {k: data[k] for k in data.files}


def _io_types(model: onnx.ModelProto) -> list[int]:
    return [v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]]


def test_fp16_keeps_fp32_inputs_and_outputs(tmp_path: Path, model_dir: Path) -> None:
    out = precision.transform(
        model_dir / "model.onnx", "fp16", tmp_path / "m.onnx", input_name="pixels", calib=None
    )
    model = onnx.load(str(out))
    assert _io_types(model) == [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT]
    kernels = {i.name: i.data_type for i in model.graph.initializer}
    assert kernels["dense/kernel"] == onnx.TensorProto.FLOAT16
    onnx.checker.check_model(model)


def test_int8_is_symmetric_qdq(tmp_path: Path, model_dir: Path, samples: dict[str, np.ndarray]) -> None:
    out = precision.transform(
        model_dir / "model.onnx", "int8", tmp_path / "q.onnx", input_name="pixels", calib=samples["x_calib"]
    )
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 3
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric int8
    assert _io_types(model) == [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT]


def test_int8_without_calibration_rows(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(precision.CalibrationDataMissing, match="int8 needs calibration data"):
        precision.transform(
            model_dir / "model.onnx", "int8", tmp_path / "q.onnx", input_name="pixels", calib=None
        )


def test_gate_measures_drop_and_diff(tmp_path: Path, model_dir: Path, samples: dict[str, np.ndarray]) -> None:
    x, y = samples["x_test"], samples["y_test"]
    g = gate.Gate(model_dir / "model.onnx", "pixels", "probabilities", x, 0.01, y)
    same, _ = g.evaluate("fp32", model_dir / "model.onnx")
    assert same.passed and same.top1_drop == 0.0 and same.max_abs_diff == 0.0
    assert same.accuracy is not None and same.accuracy > 0.9
    bad = precision.transform(
        model_dir / "model.onnx",
        "int8",
        tmp_path / "b.onnx",
        input_name="pixels",
        calib=samples["x_calib"] * 0.01,
    )
    result, out = g.evaluate("int8", bad)
    expected = 1.0 - np.mean(np.argmax(out, 1) == np.argmax(g.reference, 1))
    assert not result.passed and result.top1_drop == pytest.approx(expected) and result.top1_drop > 0.5
    assert "top-1 drop" in str(g.refuse(result)) and "maxTop1Drop 0.0100" in str(g.refuse(result))


def test_compare() -> None:
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    cand = np.array([[0.8, 0.2], [0.6, 0.4], [0.6, 0.4], [0.3, 0.7]], np.float32)
    drop, diff = gate.compare(ref, cand)
    assert drop == pytest.approx(0.25) and diff == pytest.approx(0.4)


def test_gate_reports_onnxruntime_failures(tmp_path: Path) -> None:
    junk = tmp_path / "j.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(ConversionError, match=r"onnxruntime cannot run j\.onnx"):
        gate.run(junk, "pixels", np.zeros((1, 64), np.float32))


def test_reference_rows_have_clear_margins() -> None:
    out = np.array([[0.5, 0.49], [0.9, 0.1], [0.6, 0.4], [0.99, 0.01], [0.7, 0.3], [0.8, 0.2]], np.float32)
    assert engine_json.select_rows(out, atol=0.02) == [1, 2, 3, 4]
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    ref = engine_json.reference_sample(x, "pixels", {"probabilities": out}, "probabilities", "fp16")
    assert ref["inputs"]["pixels"]["shape"] == [4, 2] and ref["inputs"]["pixels"]["data"][:2] == [2.0, 3.0]
    assert ref["top1"] == [0, 0, 0, 0] and ref["atol"] == 0.02
    assert engine_json.select_rows(out[:1], atol=0.02) == [0]  # fewer rows than wanted: take what there is
