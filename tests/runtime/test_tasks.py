"""The per-task metrics and gate verdicts that training and conversion share."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from trtforge_runtime import tasks
from trtforge_runtime.errors import DatasetError


def test_r2_and_regression_scores() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert tasks.r2(y, y) == 1.0
    assert tasks.r2(y, np.full(4, y.mean())) == pytest.approx(0.0)
    assert tasks.r2(np.ones(3), np.ones(3)) == 1.0 and tasks.r2(np.ones(3), np.zeros(3)) == 0.0
    s = tasks.scores("regression", np.array([[1.5], [2.0], [2.5], [4.0]]), y)
    assert s["mae"] == pytest.approx(0.25) and s["rmse"] == pytest.approx(np.sqrt(0.125))
    assert s["r2"] == pytest.approx(1 - 0.5 / 5.0)


def test_classification_and_multilabel_scores() -> None:
    out = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert tasks.scores("classification", out, np.array([0, 1, 1])) == {"accuracy": pytest.approx(2 / 3)}
    labels = np.array([[1, 0, 1], [0, 0, 1]])
    probs = np.array([[0.9, 0.6, 0.7], [0.1, 0.2, 0.4]])  # wrong: (0,1) and (1,2)
    s = tasks.scores("multilabel", probs, labels)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["minLabelAccuracy"] == pytest.approx(0.5) and s["exactMatch"] == 0.0


def test_agreement_per_task() -> None:
    a, b = np.array([[0.9, 0.4], [0.2, 0.7]]), np.array([[0.8, 0.6], [0.3, 0.6]])
    assert tasks.agreement("classification", a, b) == 1.0
    assert tasks.agreement("multilabel", a, b) == 0.75
    assert tasks.agreement("regression", a, b) == 1.0


def test_training_verdicts_say_which_metric_and_why() -> None:
    spec = SimpleNamespace(min_accuracy=0.9, max_mae=None, min_r2=None)
    (v,) = tasks.training_verdicts("classification", {"accuracy": 0.85}, spec)
    assert not v.passed and v.why == "test accuracy 0.85 < minAccuracy 0.9: failed"
    reg = SimpleNamespace(min_accuracy=0.0, max_mae=40.0, min_r2=0.5)
    mae, r2 = tasks.training_verdicts("regression", {"mae": 38.0, "r2": 0.42}, reg)
    assert mae.passed and mae.why == "test MAE 38 <= maxMae 40: passed"
    assert not r2.passed and r2.setting == "spec.model.train.minR2"
    report = tasks.combined([mae, r2])
    assert report["passed"] is False and report["why"] == "test R² 0.42 < minR2 0.5: failed"
    (only,) = tasks.training_verdicts(
        "regression", {"mae": 1.0, "r2": -3.0}, SimpleNamespace(max_mae=None, min_r2=None)
    )
    assert only.passed and "no minR2 set" in only.why and only.to_json()["limit"] is None
    (ml,) = tasks.training_verdicts("multilabel", {"accuracy": 0.95}, spec)
    assert ml.passed and ml.metric == "test per-label accuracy"


def test_conversion_verdicts_defaults_and_limits() -> None:
    ref = np.linspace(0, 100, 50).reshape(-1, 1)
    unset = SimpleNamespace(min_r2=None, max_mae=None, max_label_disagreement=None)
    (r2,) = tasks.conversion_verdicts("regression", ref, ref + 0.01, unset)
    assert r2.passed and r2.limit == tasks.DEFAULT_CONVERSION_MIN_R2 and r2.setting.endswith("minR2")
    (bad,) = tasks.conversion_verdicts("regression", ref, ref[::-1], unset)
    assert not bad.passed and "< minR2 0.999: failed" in bad.why
    strict = SimpleNamespace(min_r2=0.5, max_mae=0.001, max_label_disagreement=None)
    _, mae = tasks.conversion_verdicts("regression", ref, ref + 0.01, strict)
    assert not mae.passed and mae.value == pytest.approx(0.01)
    probs = np.array([[0.9, 0.1], [0.6, 0.2]])
    (ml,) = tasks.conversion_verdicts("multilabel", probs, np.array([[0.9, 0.1], [0.4, 0.2]]), unset)
    assert ml.value == 0.25 and not ml.passed and ml.limit == tasks.DEFAULT_MAX_LABEL_DISAGREEMENT


def test_labels_are_validated_per_task() -> None:
    vals = tasks.validate_labels("regression", np.array([1, 2.5]), 2, "dataset d: label 'y'")
    assert vals.dtype == np.float32
    with pytest.raises(DatasetError, match="label 'y' holds 1 NaN"):
        tasks.validate_labels("regression", np.array([1.0, np.nan]), 2, "dataset d: label 'y'")
    with pytest.raises(DatasetError, match=r"has 3 rows but the features have 2"):
        tasks.validate_labels("regression", np.zeros(3), 2, "dataset d: label 'y'")
    with pytest.raises(
        DatasetError, match=r"multilabel needs a 0/1 matrix of shape \[rows, labels\].*\(4,\)"
    ):
        tasks.validate_labels("multilabel", np.zeros(4), 4, "dataset d: label 'y'")
    with pytest.raises(DatasetError, match="must be 0 or 1"):
        tasks.validate_labels("multilabel", np.array([[0, 2]]), 1, "dataset d: label 'y'")
    assert tasks.validate_labels("multilabel", np.array([[0.0, 1.0]]), 1, "x").dtype == np.int64
    assert tasks.output_width("multilabel", np.zeros((3, 5))) == 5
    assert tasks.output_width("regression", np.zeros(3)) == 1
    assert tasks.output_width("classification", np.array([0, 3])) == 4
