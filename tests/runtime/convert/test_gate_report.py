"""The accuracy gate's decisions at its limits and the report engine.json carries (convert/gate.py).

Models here are a few onnx.helper nodes run in onnxruntime on CPU: no training, no engine builds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from trtforge_runtime.convert import gate
from trtforge_runtime.errors import AccuracyGateError, ConversionError
from trtforge_runtime.spec.model import AccuracyGate

ROWS = 300  # more than gate.EVAL_BATCH: the gate runs two chunks


def tiny_model(path: Path, shift: float = 0.0) -> Path:
    """x [N,3] -> probs = softmax(x + shift), raw = x + shift, wide (float64), label (int64 argmax)."""
    shifted = helper.make_tensor("shift", TensorProto.FLOAT, [3], [0.0, 0.0, shift])
    nodes = [
        helper.make_node("Add", ["x", "shift"], ["raw"]),
        helper.make_node("Softmax", ["raw"], ["probs"], axis=-1),
        helper.make_node("Cast", ["raw"], ["wide"], to=TensorProto.DOUBLE),
        helper.make_node("ArgMax", ["raw"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("raw", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("wide", TensorProto.DOUBLE, ["n", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["n"]),
        ],
        initializer=[shifted],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.normal(size=(ROWS, 3)).astype(np.float32)


# ------------------------------------------------------------------------------- limits and checks


def test_limits_from_spec_defaults_and_none_disables_a_bound() -> None:
    limits = gate.Limits.from_spec(AccuracyGate())
    assert limits.task == "classification"
    assert limits.to_json() == {"maxTop1Drop": 0.01, "maxAbsDiff": 0.1, "maxMeanKl": None}
    metrics = gate.Metrics(top1_drop=0.0, max_abs_diff=5.0, mean_kl=None)
    assert [(c.metric, c.passed) for c in gate.check(metrics, limits)] == [
        ("top1Drop", True),
        ("maxAbsDiff", False),
    ]
    off = gate.Limits.from_spec(AccuracyGate(max_abs_diff=None, max_mean_kl=0.2), "regression")
    assert off.task == "regression" and off.accuracy.max_mean_kl == 0.2
    assert [c.metric for c in gate.check(metrics, off)] == ["top1Drop", "meanKl"]


@pytest.mark.parametrize(
    ("metric", "bound", "value"),
    [
        ("top1Drop", "max_top1_drop", 0.25),
        ("maxAbsDiff", "max_abs_diff", 0.125),
        ("meanKl", "max_mean_kl", 0.5),
    ],
)
def test_each_bound_holds_at_the_limit_exactly_and_fails_just_above(
    metric: str, bound: str, value: float
) -> None:
    limits = gate.Limits(**{"max_top1_drop": 1.0, bound: value})
    at = gate.Metrics(**{"top1_drop": 0.0, "max_abs_diff": 0.0, "mean_kl": 0.0, _attr(metric): value})
    above = gate.Metrics(
        **{
            "top1_drop": 0.0,
            "max_abs_diff": 0.0,
            "mean_kl": 0.0,
            _attr(metric): float(np.nextafter(value, 1)),
        }
    )
    (c_at,) = [c for c in gate.check(at, limits) if c.metric == metric]
    (c_above,) = [c for c in gate.check(above, limits) if c.metric == metric]
    assert c_at.passed and c_at.value == value and c_at.limit == value
    assert not c_above.passed
    assert c_at.to_json() == {"metric": metric, "value": value, "limit": value, "passed": True}
    assert c_above.sentence().endswith(f"> {value:.6g} ({gate.BOUNDS[metric]})")
    assert c_at.sentence() == f"{metric} {value:.6g} <= {value:.6g} ({gate.BOUNDS[metric]})"


def _attr(metric: str) -> str:
    return {"top1Drop": "top1_drop", "maxAbsDiff": "max_abs_diff", "meanKl": "mean_kl"}[metric]


def test_mean_kl_bound_fails_when_outputs_are_not_distributions() -> None:
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]], dtype=np.float32)
    limits = gate.Limits(1.0, None, 10.0)
    metrics = gate.measure(logits, logits)
    assert metrics.mean_kl is None
    top1, kl = gate.check(metrics, limits)
    assert top1.metric == "top1Drop" and top1.passed
    assert kl.metric == "meanKl" and not kl.passed and kl.value is None
    assert kl.sentence() == "meanKl cannot be measured (the outputs are not probability distributions)"
    # one side a distribution, the other not: still not measurable
    probs = np.array([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]], dtype=np.float32)
    assert gate.mean_kl(probs, logits) is None and gate.mean_kl(logits, probs) is None


def test_is_distribution_at_its_tolerances() -> None:
    assert gate.is_distribution(np.array([[0.5, 0.5]], np.float32))
    assert not gate.is_distribution(np.array([[1.0]], np.float32))  # one column is not a distribution
    assert not gate.is_distribution(np.zeros((0, 3), np.float32))
    assert not gate.is_distribution(np.zeros((0, 1), np.float32))
    row = np.array([[-1e-6, 0.5, 0.500001]], np.float64)  # tiny negative value is tolerated
    assert gate.is_distribution(row)
    assert not gate.is_distribution(np.array([[-0.5, 1.0, 0.5]], np.float64))
    tol = gate.DISTRIBUTION_TOLERANCE
    assert gate.is_distribution(np.array([[0.5, 0.5 + tol / 2]], np.float64))
    assert not gate.is_distribution(np.array([[0.5, 0.5 + 2 * tol]], np.float64))
    # per-row over a flattened (rows, 2, 2) output
    assert gate.is_distribution(np.full((3, 2, 2), 0.25, np.float32))


def test_mean_kl_values_in_nats_over_multi_dimensional_rows() -> None:
    p = np.full((4, 2, 2), 0.25, np.float32)
    q = np.tile(np.array([[0.5, 0.25], [0.125, 0.125]], np.float32), (4, 1, 1))
    expected = float(np.sum(0.25 * (np.log(0.25) - np.log(q[0].astype(np.float64)))))
    assert gate.mean_kl(p, q) == pytest.approx(expected, rel=1e-9)
    m = gate.measure(p, q)
    assert m.mean_kl == pytest.approx(expected, rel=1e-9)
    assert m.max_abs_diff == pytest.approx(0.25)
    # a zero probability in the candidate is clipped, not infinite
    zero = np.array([[1.0, 0.0]], np.float32)
    assert np.isfinite(gate.mean_kl(np.array([[0.5, 0.5]], np.float32), zero))
    assert gate.mean_kl(zero, zero) == 0.0
    # a zero in the reference adds nothing (0 log 0 = 0), it does not make the divergence NaN
    assert gate.mean_kl(zero, np.array([[0.5, 0.5]], np.float32)) == pytest.approx(np.log(2.0), rel=1e-9)


def test_measure_top1_drop_and_abs_diff_in_float64_and_empty_rows() -> None:
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    cand = ref.copy()
    cand[0] = [0.1, 0.9]
    m = gate.measure(ref, cand)
    assert m.top1_drop == 0.25 and m.max_abs_diff == pytest.approx(0.8, abs=1e-6)
    assert gate.compare(ref, cand) == (m.top1_drop, m.max_abs_diff)
    empty = gate.measure(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    assert empty == gate.Metrics(0.0, 0.0, None)
    assert [c.passed for c in gate.check(empty, gate.Limits(0.0, 0.0))] == [True, True]
    # 3-d outputs are compared row by row (flattened)
    ref3 = np.zeros((2, 2, 2), np.float32)
    cand3 = ref3.copy()
    cand3[1, 1, 1] = 1.0
    assert gate.measure(ref3, cand3).top1_drop == 0.5


def test_one_value_per_row_is_a_class_compared_exactly_or_a_binary_score() -> None:
    """argmax over one column is always 0: such outputs had a top1Drop of 0 whatever they held."""
    ref = np.array([0, 1, 2, 1], np.int64)
    assert gate.measure(ref, np.array([0, 2, 2, 1], np.int64)).top1_drop == 0.25
    assert gate.measure(ref[:, None], np.array([[0], [2], [2], [0]], np.int64)).top1_drop == 0.5
    # integer rows of several values (e.g. top-k indices): a row differs when any of its values does
    topk = np.array([[3, 1], [2, 0]], np.int32)
    assert gate.measure(topk, np.array([[3, 1], [0, 2]], np.int32)).top1_drop == 0.5
    flags = np.array([True, False, True])
    assert gate.measure(flags, np.array([True, True, True])).top1_drop == pytest.approx(1 / 3)
    # a sigmoid probability: the class is > 0.5, on the reference's scale even if fp16 rounds past 1.0
    probability = np.array([[0.9], [0.2], [0.6], [1.0]], np.float32)
    moved = np.array([[0.9], [0.2], [0.4], [1.001]], np.float32)
    assert gate.measure(probability, moved).top1_drop == 0.25
    # a logit: the class is > 0
    logit = np.array([[2.0], [-1.0], [0.3], [-4.0]], np.float32)
    assert gate.measure(logit, np.array([[2.0], [-1.0], [-0.1], [-4.0]], np.float32)).top1_drop == 0.25
    assert list(gate.classes(logit)) == [True, False, True, False]
    assert list(gate.classes(ref)) == [0, 1, 2, 1]


def test_binary_scores_at_their_boundaries() -> None:
    """0 and 1 are probabilities (threshold 0.5), a value just outside makes the column logits (threshold
    0); a score exactly at the threshold is the negative class."""
    assert gate.score_threshold(np.array([0.0, 1.0, 0.5])) == 0.5
    assert gate.score_threshold(np.array([-0.01, 0.5])) == 0.0
    assert gate.score_threshold(np.array([1.01, 0.5])) == 0.0
    assert list(gate.classes(np.array([[0.5], [0.51], [0.0]], np.float32))) == [False, True, False]
    assert list(gate.classes(np.array([[0.0], [0.01], [-2.0], [1.5]], np.float32))) == [
        False,
        True,
        False,
        True,
    ]
    assert list(gate.classes(np.array([[0.3]], np.float32), threshold=0.2)) == [True]
    # probabilities in the reference: a candidate of 0.3 is class 0 (a logit threshold would say 1)
    ref = np.array([[0.0], [0.9], [1.0]], np.float32)
    assert gate.measure(ref, np.array([[0.3], [0.9], [1.0]], np.float32)).top1_drop == 0.0
    assert gate.measure(ref, np.array([[0.6], [0.5], [1.0]], np.float32)).top1_drop == pytest.approx(2 / 3)
    # logits in the reference: a candidate of 0.3 is class 1
    logits = np.array([[-1.0], [2.0], [3.0]], np.float32)
    assert gate.measure(logits, np.array([[0.3], [2.0], [3.0]], np.float32)).top1_drop == pytest.approx(1 / 3)
    # integer classes against float values: compared exactly, not thresholded
    assert gate.measure(np.array([0, 2, 2, 1]), np.array([0.0, 2.0, 2.0, 1.0])).top1_drop == 0.0
    assert gate.measure(np.array([0, 2, 2, 1]), np.array([0.0, 2.0, 1.0, 1.0])).top1_drop == 0.25
    assert gate.is_exact(np.array([True])) and not gate.is_exact(np.array([1.0]))


def test_a_class_output_fails_the_gate_on_top1_alone(tmp_path: Path, rows: np.ndarray) -> None:
    """The label output (int64 argmax) of a candidate that moves some classes fails top1Drop, with
    maxAbsDiff off; its accuracy is its classes against the labels."""
    ref = tiny_model(tmp_path / "ref.onnx")
    cand = tiny_model(tmp_path / "cand.onnx", shift=0.3)
    y = np.argmax(rows, axis=1)
    g = gate.Gate(ref, "x", "label", rows, gate.Limits(0.01, None), y, output_names=["label"])
    result, out = g.evaluate("int8", cand)
    moved = float(np.mean(out != y))
    assert 0.01 < moved < 0.5  # the shift moves some rows to class 2, not all
    assert result.top1_drop == pytest.approx(moved)
    assert not result.passed and result.reason is not None and "top1Drop" in result.reason
    assert result.accuracy == pytest.approx(1.0 - moved)
    same = g.evaluate("fp32", ref)[0]
    assert same.passed and same.top1_drop == 0.0 and same.accuracy == 1.0


def test_nan_in_the_candidate_fails_the_gate() -> None:
    ref = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    cand = ref.copy()
    cand[1, 0] = np.nan
    limits = gate.Limits.from_spec(AccuracyGate(max_top1_drop=1.0, max_mean_kl=5.0))
    _, checks = gate.judge_outputs(ref, cand, limits)
    assert not all(c.passed for c in checks)
    assert {c.metric for c in checks if not c.passed} >= {"maxAbsDiff", "meanKl"}


def test_multilabel_abs_diff_at_its_limit_and_when_off() -> None:
    ref = np.array([[0.9, 0.2], [0.1, 0.7]] * 10, np.float32)
    cand = ref + np.float32(0.125)
    diff = float(np.max(np.abs(ref.astype(np.float64) - cand.astype(np.float64))))
    at = gate.Limits.from_spec(AccuracyGate(max_abs_diff=diff), "multilabel")
    _, checks = gate.judge_outputs(ref, cand, at)
    assert checks[0].to_json() == {"metric": "maxAbsDiff", "value": diff, "limit": diff, "passed": True}
    below = gate.Limits.from_spec(AccuracyGate(max_abs_diff=float(np.nextafter(diff, 0))), "multilabel")
    assert not gate.judge_outputs(ref, cand, below)[1][0].passed
    off = gate.Limits.from_spec(AccuracyGate(max_abs_diff=None), "multilabel")
    assert [c.metric for c in gate.judge_outputs(ref, cand, off)[1]] == ["labelDisagreement"]


def test_sentence_of_engine_json_checks_round_trips() -> None:
    checks = [
        gate.Check("maxAbsDiff", 0.5, 0.1, False, output="probs"),
        gate.Check("maxAbsDiff", 0.05, 0.1, True),
        gate.Check("r2", 0.99, 0.999, False, at_least=True),
        gate.Check("r2", 0.9995, 0.999, True, at_least=True, output="price"),
        gate.Check("meanKl", None, 0.1, False),
    ]
    for c in checks:
        stored = json.loads(json.dumps(c.to_json()))
        assert gate.sentence(stored) == c.sentence()
    assert checks[0].to_json()["output"] == "probs" and "output" not in checks[1].to_json()
    assert "atLeast" not in checks[0].to_json() and checks[2].to_json()["atLeast"] is True
    assert checks[0].sentence() == "output 'probs': maxAbsDiff 0.5 > 0.1 (maxAbsDiff)"
    assert checks[1].sentence() == "maxAbsDiff 0.05 <= 0.1 (maxAbsDiff)"
    assert checks[2].sentence() == "r2 0.99 < 0.999 (minR2)"
    assert checks[3].sentence() == "output 'price': r2 0.9995 >= 0.999 (minR2)"
    assert checks[1].to_json()["passed"] is True and checks[0].to_json()["passed"] is False


# ------------------------------------------------------------------------------- results in engine.json


def test_gate_result_json_of_a_measured_and_a_skipped_candidate() -> None:
    metrics = gate.Metrics(0.125, 0.5, None)
    r = gate.GateResult(
        "fp16", metrics, False, [gate.Check("top1Drop", 0.125, 0.01, False)], 1.234567, 0.91234567, "why"
    )
    assert r.to_json() == {
        "precision": "fp16",
        "top1Drop": 0.125,
        "maxAbsDiff": 0.5,
        "meanKl": None,
        "passed": False,
        "seconds": 1.2346,
        "checks": [{"metric": "top1Drop", "value": 0.125, "limit": 0.01, "passed": False}],
        "accuracy": 0.912346,
        "rejectedBy": "gate",
        "reason": "why",
    }
    assert r.top1_drop == 0.125 and r.max_abs_diff == 0.5
    ok = gate.GateResult("fp32", metrics, True, seconds=0.0)
    assert ok.to_json() == {
        "precision": "fp32",
        "top1Drop": 0.125,
        "maxAbsDiff": 0.5,
        "meanKl": None,
        "passed": True,
        "seconds": 0.0,
    }
    skipped = gate.GateResult.skipped("int8", "calibration", "no calibration rows")
    assert skipped.to_json() == {
        "precision": "int8",
        "passed": False,
        "seconds": 0.0,
        "rejectedBy": "calibration",
        "reason": "no calibration rows",
    }
    assert skipped.top1_drop == 1.0 and skipped.max_abs_diff == float("inf")
    ok.reject("build", "the builder ran out of memory")
    assert ok.to_json()["passed"] is False
    assert ok.to_json()["rejectedBy"] == "build" and ok.to_json()["reason"] == "the builder ran out of memory"


def test_gate_result_json_lists_outputs_only_with_several() -> None:
    a, b = gate.Metrics(0.0, 0.1, None), gate.Metrics(0.5, 0.2, 0.3)
    several = gate.GateResult("fp16", a, True, per_output={"a": a, "b": b}).to_json()
    assert several["outputs"] == {"a": a.to_json(), "b": b.to_json()}
    one = gate.GateResult("fp16", a, True, per_output={"a": a}).to_json()
    assert "outputs" not in one


# ------------------------------------------------------------------------------- the gate on onnx models


def test_run_and_run_all_return_named_outputs_in_chunks(tmp_path: Path, rows: np.ndarray) -> None:
    path = tiny_model(tmp_path / "m.onnx")
    first = gate.run(path, "x", rows)
    assert first.shape == (ROWS, 3) and first.dtype == np.float32
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-5)  # the first output: probs
    raw = gate.run(path, None, {"x": rows}, "raw")
    np.testing.assert_array_equal(raw, rows)
    outs = gate.run_all(path, {"x": rows}, ["label", "wide", "raw"])
    assert list(outs) == ["label", "wide", "raw"]
    assert outs["wide"].dtype == np.float32 and outs["wide"].shape == (ROWS, 3)
    assert outs["label"].dtype == np.int64
    np.testing.assert_array_equal(outs["label"], np.argmax(rows, axis=1))
    empty = gate.run_all(path, {"x": rows[:0]}, ["probs", "label"])
    for a in empty.values():
        assert a.shape == (0,) and a.dtype == np.float32
    sess = gate.session(path)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert sess.get_session_options().intra_op_num_threads == 2
    assert sess.get_session_options().inter_op_num_threads == 1


def test_inputs_without_a_name_and_unreadable_models_are_conversion_errors(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"^an input array without an input name$"):
        gate.as_feeds(None, np.zeros((2, 3), np.float32))
    feeds = {"x": np.zeros((2, 3), np.float32)}
    copied = gate.as_feeds(None, feeds)
    assert copied == feeds and copied is not feeds
    assert gate.feed_rows({}) == 0 and gate.feed_rows(feeds) == 2
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConversionError, match=r"onnxruntime cannot run broken\.onnx for the accuracy gate"):
        gate.run(bad, "x", np.zeros((2, 3), np.float32))
    model = tiny_model(tmp_path / "m.onnx")
    with pytest.raises(ConversionError, match=r"onnxruntime cannot run m\.onnx for the accuracy gate: "):
        gate.run_all(model, {"wrong": np.zeros((2, 3), np.float32)}, ["probs"])


def test_gate_judges_every_output_and_names_the_failing_one(tmp_path: Path, rows: np.ndarray) -> None:
    ref = tiny_model(tmp_path / "ref.onnx")
    cand = tiny_model(tmp_path / "cand.onnx", shift=0.05)
    y = np.argmax(rows, axis=1)
    limits = gate.Limits.from_spec(AccuracyGate(max_top1_drop=1.0, max_abs_diff=0.04))
    g = gate.Gate(ref, "x", "probs", rows, limits, y, output_names=["probs", "raw"])
    assert g.rows == ROWS and g.output_name == "probs" and g.max_top1_drop == 1.0
    assert 0 < g.reference_seconds < 60  # a duration, not a clock reading
    result, out = g.evaluate("fp16", cand)
    assert out.shape == (ROWS, 3) and result.precision == "fp16" and 0 < result.seconds < 60
    assert not result.passed
    assert [(c.output, c.metric, c.passed) for c in result.checks] == [
        ("probs", "top1Drop", True),
        ("probs", "maxAbsDiff", True),
        ("raw", "top1Drop", True),
        ("raw", "maxAbsDiff", False),
    ]
    assert result.reason is not None
    assert result.reason.startswith("accuracy gate: output 'raw': maxAbsDiff 0.05")
    assert result.reason.endswith("> 0.04 (maxAbsDiff)") and ";" not in result.reason
    doc = result.to_json()
    assert set(doc["outputs"]) == {"probs", "raw"}
    assert doc["outputs"]["raw"]["maxAbsDiff"] == pytest.approx(0.05, abs=1e-6)
    assert doc["maxAbsDiff"] == doc["outputs"]["probs"]["maxAbsDiff"]  # the headline is the first output's
    assert doc["checks"][3] == {
        "metric": "maxAbsDiff",
        "value": doc["outputs"]["raw"]["maxAbsDiff"],
        "limit": 0.04,
        "passed": False,
        "output": "raw",
    }
    assert result.accuracy is not None and 0.0 < result.accuracy < 1.0
    # two failing checks: both named, joined by "; "
    tight = gate.Gate(ref, "x", "probs", rows, gate.Limits(1.0, 0.001), y, output_names=["probs", "raw"])
    two = tight.evaluate("int8", cand)[0]
    assert two.reason is not None and two.reason.count("; ") == 1
    assert two.reason.startswith("accuracy gate: output 'probs': maxAbsDiff ")
    assert "; output 'raw': maxAbsDiff " in two.reason
    err = tight.refuse(two)
    assert isinstance(err, AccuracyGateError)
    message = str(err)
    assert message.startswith("precision int8 rejected by the accuracy gate: output 'probs': maxAbsDiff")
    assert "; output 'raw': maxAbsDiff" in message and f"({ROWS} samples;" in message
    assert "loosen engine.accuracy.maxAbsDiff / engine.accuracy.maxAbsDiff or choose" in message


def test_gate_with_one_output_reports_no_output_names(tmp_path: Path, rows: np.ndarray) -> None:
    ref = tiny_model(tmp_path / "ref.onnx")
    g = gate.Gate(ref, "x", "probs", rows, 0.0)  # a bare float is the top-1 bound
    assert g.limits == gate.Limits(0.0) and g.x is rows and g.input_name == "x"
    same = g.judge("fp32", g.reference.copy(), seconds=0.5)
    assert same.passed and same.reason is None and same.per_output == {} and same.seconds == 0.5
    assert [(c.metric, c.output) for c in same.checks] == [("top1Drop", None)]
    swapped = g.reference[:, ::-1].copy()
    bad = g.judge("fp16", {"probs": swapped})
    assert not bad.passed and bad.per_output == {} and bad.precision == "fp16" and bad.seconds == 0.0
    assert bad.reason is not None and bad.reason.startswith("accuracy gate: top1Drop ")
    assert bad.checks[0].output is None


def test_report_holds_what_engine_json_documents(tmp_path: Path, rows: np.ndarray) -> None:
    ref = tiny_model(tmp_path / "ref.onnx")
    y = np.argmax(rows, axis=1)
    y[:30] = (y[:30] + 1) % 3  # the fp32 model gets 30 of 300 rows wrong
    limits = gate.Limits.from_spec(AccuracyGate())
    g = gate.Gate(ref, "x", "probs", rows, limits, y)
    fp16 = g.judge("fp16", g.reference)
    rep = g.report([fp16, gate.GateResult.skipped("int8", "target", "no int8 here")], "fp16", "test split")
    assert rep["samples"] == ROWS and rep["task"] == "classification"
    assert rep["maxTop1Drop"] == 0.01 and rep["maxAbsDiff"] == 0.1 and rep["maxMeanKl"] is None
    assert rep["chosen"] == "fp16" and rep["data"] == "test split"
    assert rep["referenceAccuracy"] == pytest.approx(0.9)
    assert rep["referenceSeconds"] == round(g.reference_seconds, 4) and rep["referenceSeconds"] >= 0
    assert [c["precision"] for c in rep["candidates"]] == ["fp16", "int8"]
    assert rep["candidates"][0]["accuracy"] == 0.9 and rep["candidates"][1]["rejectedBy"] == "target"
    json.dumps(rep)  # engine.json holds it as is
    # labels of another length than the rows: no accuracy
    g.y = y[:10]
    assert g.report([], "fp32", "")["referenceAccuracy"] is None


def test_regression_and_multilabel_accuracy_is_the_tasks_headline(tmp_path: Path, rows: np.ndarray) -> None:
    ref = tiny_model(tmp_path / "ref.onnx")
    raw_y = rows + np.float32(0.5)
    reg = gate.Gate(ref, "x", "raw", rows, gate.Limits.from_spec(AccuracyGate(), "regression"), raw_y)
    expected_r2 = gate_r2(raw_y, rows)
    assert reg.report([], "fp32", "")["referenceAccuracy"] == pytest.approx(expected_r2)
    assert reg.report([], "fp32", "")["task"] == "regression"
    labels = (rows > 0.5).astype(np.float32)
    labels[:, 0] = 1.0 - labels[:, 0]  # the first label always wrong
    ml = gate.Gate(ref, "x", "raw", rows, gate.Limits.from_spec(AccuracyGate(), "multilabel"), labels)
    assert ml.report([], "fp32", "")["referenceAccuracy"] == pytest.approx(2 / 3)


def gate_r2(y: np.ndarray, out: np.ndarray) -> float:
    from trtforge_runtime import tasks

    return tasks.r2(y, out)


def test_a_gate_on_zero_rows_measures_nothing_and_does_not_crash(tmp_path: Path, rows: np.ndarray) -> None:
    ref = tiny_model(tmp_path / "ref.onnx")
    g = gate.Gate(ref, "x", "probs", rows[:0], gate.Limits.from_spec(AccuracyGate(max_mean_kl=0.1)))
    assert g.rows == 0
    result, out = g.evaluate("fp16", tiny_model(tmp_path / "cand.onnx", shift=1.0))
    assert len(out) == 0 and result.metrics == gate.Metrics(0.0, 0.0, None)
    # nothing to compare: the distribution check cannot be made, so a KL bound rejects
    assert [(c.metric, c.passed) for c in result.checks] == [
        ("top1Drop", True),
        ("maxAbsDiff", True),
        ("meanKl", False),
    ]


def test_evaluate_logs_each_candidates_checks_and_verdict(
    tmp_path: Path, rows: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    ref = tiny_model(tmp_path / "ref.onnx")
    g = gate.Gate(ref, "x", "probs", rows, gate.Limits(1.0, 0.5), output_names=["probs", "raw"])
    with caplog.at_level("INFO", logger=gate.__name__):
        g.evaluate("fp32", ref)
        g.evaluate("fp16", tiny_model(tmp_path / "cand.onnx", shift=1.0))
    passed, rejected = [r.getMessage() for r in caplog.records if r.name == gate.__name__]
    assert passed.startswith(f"gate fp32 on {ROWS} rows: output 'probs': top1Drop 0 <= 1 (maxTop1Drop); ")
    assert passed.endswith(": passed") and passed.count("; ") == 3
    assert rejected.startswith(f"gate fp16 on {ROWS} rows: ") and rejected.endswith(": rejected")
    assert "output 'raw': maxAbsDiff 1 > 0.5 (maxAbsDiff)" in rejected
