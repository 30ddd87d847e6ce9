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


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for name in n.input:
            out.setdefault(name, []).append(n)
    return out


def test_int8_follows_tensorrt_qdq_placement(
    tmp_path: Path, model_dir: Path, samples: dict[str, np.ndarray]
) -> None:
    """Q/DQ only on MatMul inputs; weights per output channel; biases, 0-d normalize constants and the
    softmax output stay float; every zero point is 0 (symmetric int8)."""
    out = precision.transform(
        model_dir / "model.onnx", "int8", tmp_path / "q.onnx", input_name="pixels", calib=samples["x_calib"]
    )
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    consumers = _consumers(model)
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dq) == 4  # two activations, two weights
    for n in dq:
        assert {c.op_type for c in consumers[n.output[0]]} == {"MatMul"}
        assert inits[n.input[2]].dtype == np.int8 and not inits[n.input[2]].any()
    weights = [n for n in dq if n.input[0] in inits]
    assert sorted(inits[n.input[1]].shape for n in weights) == [(10,), (32,)]  # one scale per output channel
    assert all(next(a.i for a in n.attribute if a.name == "axis") == 1 for n in weights)
    # float where TensorRT wants float: biases, normalize's 0-d constants, the softmax output
    for name in ("dense/bias", "dense_1/bias", "normalize/scale", "normalize/offset"):
        assert inits[name].dtype == np.float32, name
        assert all(c.op_type in ("Add", "Mul") for c in consumers[name])
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer["probabilities"].op_type == "Softmax"
    assert producer[producer["probabilities"].input[0]].op_type == "Add"  # no Q/DQ before the softmax
    assert _io_types(model) == [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT]


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_int8_calibration_methods_keep_quality(
    tmp_path: Path, model_dir: Path, samples: dict[str, np.ndarray], method: str
) -> None:
    """Every calibrator works on a row count that is not a whole number of batches (onnxruntime's
    histogram calibrators fail on a short last batch) and keeps top-1 within 1 % of fp32."""
    options = precision.Int8Options(method=method, rows=300)
    out = precision.transform(
        model_dir / "model.onnx",
        "int8",
        tmp_path / "q.onnx",
        input_name="pixels",
        calib=samples["x_calib"],
        options=options,
    )
    g = gate.Gate(model_dir / "model.onnx", "pixels", "probabilities", samples["x_test"], 0.01)
    result, _ = g.evaluate("int8", out)
    assert result.top1_drop <= 0.01 and result.max_abs_diff < 0.1
    report = options.report(samples["x_calib"])
    assert report["method"] == method and report["rows"] == 300 and report["batch"] == 60


def _activation_scales(path: Path) -> dict[str, float]:
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"}


def test_entropy_calibration_clips_where_minmax_does_not(
    tmp_path: Path, model_dir: Path, samples: dict[str, np.ndarray]
) -> None:
    """entropy is TensorRT's 2048-bin / 128-level KL threshold search, not quantize_static's 128/128 bins
    (with which it returns the minmax ranges): some activation range is narrower, none wider."""
    scales = {}
    for method in ("minmax", "entropy"):
        out = precision.transform(
            model_dir / "model.onnx",
            "int8",
            tmp_path / f"{method}.onnx",
            input_name="pixels",
            calib=samples["x_calib"],
            options=precision.Int8Options(method=method),
        )
        scales[method] = _activation_scales(out)
    assert scales["entropy"].keys() == scales["minmax"].keys() and scales["minmax"]
    assert all(scales["entropy"][k] <= scales["minmax"][k] * (1 + 1e-6) for k in scales["minmax"])
    assert any(scales["entropy"][k] < 0.99 * scales["minmax"][k] for k in scales["minmax"])


def test_calibration_rows_are_equal_batches_of_at_most_64() -> None:
    for n, batch, used in [
        (1, 1, 1),
        (30, 30, 30),
        (64, 64, 64),
        (65, 32, 64),
        (96, 48, 96),
        (1000, 62, 992),
    ]:
        rows = precision.calibration_rows(np.zeros((n, 2), np.float32), 1024)
        assert (precision.calibration_batch(n), len(rows)) == (batch, used), n
    assert len(precision.calibration_rows(np.zeros((2000, 2), np.float32), 1024)) == 1024


def test_unknown_calibration_method(tmp_path: Path, model_dir: Path, samples: dict[str, np.ndarray]) -> None:
    with pytest.raises(ConversionError, match=r"calibration\.method 'median' is not one of minmax"):
        precision.transform(
            model_dir / "model.onnx",
            "int8",
            tmp_path / "q.onnx",
            input_name="pixels",
            calib=samples["x_calib"],
            options=precision.Int8Options(method="median"),
        )


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
    assert same.metrics is not None and same.metrics.mean_kl == 0.0
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
    message = str(g.refuse(result))
    assert "top1Drop 0." in message and "> 0.01 (maxTop1Drop)" in message
    assert "loosen engine.accuracy.maxTop1Drop" in message


REF = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
CAND = np.array([[0.8, 0.2], [0.6, 0.4], [0.6, 0.4], [0.3, 0.7]], np.float32)


def test_measure() -> None:
    m = gate.measure(REF, CAND)
    assert m.top1_drop == 0.25 and m.max_abs_diff == pytest.approx(0.4, abs=1e-6)
    p, q = REF.astype(np.float64), CAND.astype(np.float64)
    assert m.mean_kl == pytest.approx(float(np.mean(np.sum(p * np.log(p / q), axis=1))))
    assert gate.compare(REF, CAND) == (m.top1_drop, m.max_abs_diff)
    logits = np.array([[3.0, -1.0], [0.5, 2.0]], np.float32)  # not distributions: no KL
    assert gate.measure(logits, logits + 0.1).mean_kl is None


def _judge(limits: gate.Limits) -> gate.GateResult:
    g = object.__new__(gate.Gate)  # a gate with a known reference, without running a model
    g.reference, g.limits, g.y, g.x = REF, limits, None, REF
    return g.judge("int8", CAND)


@pytest.mark.parametrize("metric", ["maxTop1Drop", "maxAbsDiff", "maxMeanKl"])
def test_each_bound_holds_at_its_exact_limit_and_fails_just_below(metric: str) -> None:
    """value == limit passes, the next float below fails: a gate that loosens a limit (by 0.05, or to
    0.5) or ignores it fails this test."""
    value = gate.measure(REF, CAND).to_json()[gate.METRICS[metric]]
    assert value is not None and 0 < value < 0.5
    loose = {"maxTop1Drop": 1.0, "maxAbsDiff": None, "maxMeanKl": None}

    def limits(limit: float) -> gate.Limits:
        bounds = loose | {metric: limit}
        return gate.Limits(bounds["maxTop1Drop"], bounds["maxAbsDiff"], bounds["maxMeanKl"])

    at = _judge(limits(value))
    assert at.passed and at.reason is None
    assert [c.metric for c in at.checks if c.limit == value] == [gate.METRICS[metric]]
    below = _judge(limits(float(np.nextafter(value, 0.0))))
    assert not below.passed
    assert below.reason is not None and f"({metric})" in below.reason
    assert [c.passed for c in below.checks if c.metric == gate.METRICS[metric]] == [False]


def test_kl_bound_on_outputs_that_are_not_probabilities() -> None:
    g = object.__new__(gate.Gate)
    g.reference, g.limits, g.y, g.x = REF * 3.0, gate.Limits(1.0, None, 1.0), None, REF
    result = g.judge("fp16", REF * 3.0)
    assert not result.passed and result.metrics is not None and result.metrics.mean_kl is None
    assert "meanKl cannot be measured (the outputs are not probability distributions)" in str(result.reason)


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
