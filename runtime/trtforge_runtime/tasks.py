"""What a model's outputs mean per `spec.model.task`, and the metrics both quality gates decide on.

One module, NumPy only (no TensorFlow), shared by training (`trtforge train`: the test-split scores and
the training gate) and conversion (`trtforge convert`: a candidate engine's outputs against the fp32
model's), so both gates count the same way:

- classification: class scores, argmax (a single unit: > 0.5). Training gate: top-1 accuracy >=
  minAccuracy. Conversion gate: top-1 drop against fp32 <= maxTop1Drop (convert/gate.py).
- regression: values, any width. Training gate: test MAE <= maxMae and/or R² >= minR2. Conversion gate:
  R² of the candidate against the fp32 outputs >= minR2 (default 0.999), and MAE <= maxMae when set.
- multilabel: one sigmoid per label, decided at > 0.5. Training gate: per-label accuracy >= minAccuracy.
  Conversion gate: the fraction of (row, label) decisions that differ from fp32 <= maxLabelDisagreement
  (default 0.01).

Every decision is a `Verdict` that names the metric, the measured value, the limit and why it passed or
failed, and goes into metrics.json / engine.json as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trtforge_runtime.errors import DatasetError

CLASSIFICATION = "classification"
REGRESSION = "regression"
MULTILABEL = "multilabel"
THRESHOLD = 0.5
DEFAULT_CONVERSION_MIN_R2 = 0.999
DEFAULT_MAX_LABEL_DISAGREEMENT = 0.01


@dataclass(frozen=True)
class Verdict:
    """One gate decision: `value` of `metric` compared with `limit` (`at_least` or at most)."""

    metric: str
    value: float
    limit: float | None  # None: nothing to enforce, the value is only reported
    at_least: bool
    setting: str  # the spec field that sets the limit, e.g. "spec.model.train.minR2"

    @property
    def passed(self) -> bool:
        if self.limit is None:
            return True
        slack = 1e-12
        return self.value >= self.limit - slack if self.at_least else self.value <= self.limit + slack

    @property
    def why(self) -> str:
        name = self.setting.rsplit(".", 1)[-1]
        if self.limit is None:
            return f"{self.metric} {self.value:.4g} (no {name} set): passed"
        op = (">=" if self.passed else "<") if self.at_least else ("<=" if self.passed else ">")
        verdict = "passed" if self.passed else "failed"
        return f"{self.metric} {self.value:.4g} {op} {name} {self.limit:.4g}: {verdict}"

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": float(f"{self.value:.6g}"),
            "limit": self.limit,
            "setting": self.setting,
            "passed": self.passed,
            "why": self.why,
        }


def combined(verdicts: list[Verdict]) -> dict[str, Any]:
    """The report of several verdicts: passed only if all passed; `why` names the failing ones first."""
    failed = [v for v in verdicts if not v.passed]
    return {
        "passed": not failed,
        "why": "; ".join(v.why for v in (failed or verdicts)),
        "checks": [v.to_json() for v in verdicts],
    }


# -------------------------------------------------------------------------------------------- labels


def validate_labels(task: str, y: np.ndarray, rows: int, where: str) -> np.ndarray:
    """Labels in the form `task` trains on: float32 values (regression) or a 0/1 int64 matrix (multilabel)."""
    if y.dtype.kind not in "biuf":
        raise DatasetError(f"{where} must be numeric, got dtype {y.dtype}")
    if len(y) != rows:
        raise DatasetError(f"{where} has {len(y)} rows but the features have {rows}: they need the same")
    if task == REGRESSION:
        if y.ndim not in (1, 2):
            raise DatasetError(
                f"{where}: regression needs one value or a row of values per row, got shape {y.shape}"
            )
        values = y.astype(np.float32)
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise DatasetError(f"{where} holds {bad} NaN or infinite values")
        return values
    if task == MULTILABEL:
        if y.ndim != 2 or y.shape[1] < 1:
            raise DatasetError(
                f"{where}: multilabel needs a 0/1 matrix of shape [rows, labels] (an .npz array), got shape "
                f"{tuple(y.shape)}"
            )
        if not np.all((y == 0) | (y == 1)):
            raise DatasetError(f"{where}: multilabel labels must be 0 or 1")
        return y.astype(np.int64)
    raise DatasetError(f"{where}: unknown task {task!r}")


def output_width(task: str, y: np.ndarray) -> int:
    """How many output units the labels call for (classification: the class count)."""
    if task == CLASSIFICATION:
        return int(y.max()) + 1 if len(y) else 0
    return 1 if y.ndim == 1 else int(y.shape[1])


def describe_labels(task: str, y: np.ndarray) -> str:
    if task == CLASSIFICATION:
        return f"{output_width(task, y)} classes"
    if task == MULTILABEL:
        return f"{y.shape[1]} labels"
    return f"{output_width(task, y)} target value(s), range {float(y.min()):.4g}..{float(y.max()):.4g}"


# ------------------------------------------------------------------------------------------- metrics


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Class per row: argmax, or a 0.5 threshold for a single-unit output."""
    out = outputs.reshape(len(outputs), -1)
    if out.shape[1] == 1:
        return (out[:, 0] > THRESHOLD).astype(np.int64)
    return np.argmax(out, axis=1).astype(np.int64)


def _as_rows(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(len(a), -1)


def r2(truth: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination over all values (1 - SSE/SST; 1.0 when the truth is constant and
    matched exactly, 0.0 when constant and missed)."""
    t, p = _as_rows(truth).ravel(), _as_rows(pred).ravel()
    sst = float(np.sum((t - t.mean()) ** 2)) if t.size else 0.0
    sse = float(np.sum((t - p) ** 2))
    if sst == 0.0:
        return 1.0 if sse == 0.0 else 0.0
    return 1.0 - sse / sst


def scores(task: str, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Quality of `outputs` against the labels `y` (a test split's metrics in metrics.json)."""
    if not len(y):
        return {}
    if task == REGRESSION:
        err = _as_rows(outputs) - _as_rows(y)
        return {
            "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "r2": r2(y, outputs),
        }
    if task == MULTILABEL:
        decided = _as_rows(outputs) > THRESHOLD
        per_label = np.mean(decided == (_as_rows(y) > THRESHOLD), axis=0)
        return {
            "accuracy": float(np.mean(per_label)),
            "minLabelAccuracy": float(np.min(per_label)),
            "exactMatch": float(np.mean(np.all(decided == (_as_rows(y) > THRESHOLD), axis=1))),
        }
    return {"accuracy": float(np.mean(predicted_classes(outputs) == y.reshape(-1)))}


def agreement(task: str, reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of decisions two models share: top-1 classes, or per-label decisions; 1.0 for regression
    (its outputs are values, compared by `scores`/`conversion_verdicts` instead)."""
    if not len(reference):
        return 1.0
    if task == MULTILABEL:
        return float(np.mean((_as_rows(reference) > THRESHOLD) == (_as_rows(candidate) > THRESHOLD)))
    if task == REGRESSION:
        return 1.0
    return float(np.mean(predicted_classes(reference) == predicted_classes(candidate)))


def headline(task: str) -> str:
    """The test metric the training gate and status report first: accuracy, or R² for regression."""
    return "r2" if task == REGRESSION else "accuracy"


# --------------------------------------------------------------------------------------------- gates


def training_verdicts(task: str, test: dict[str, float], train_spec: Any) -> list[Verdict]:
    """The training gate on the test split's scores, from spec.model.train (minAccuracy/maxMae/minR2)."""
    where = "spec.model.train"
    if task == REGRESSION:
        out = []
        if train_spec.max_mae is not None:
            out.append(Verdict("test MAE", test["mae"], float(train_spec.max_mae), False, f"{where}.maxMae"))
        if train_spec.min_r2 is not None:
            out.append(Verdict("test R²", test["r2"], float(train_spec.min_r2), True, f"{where}.minR2"))
        if not out:  # no limit set: the report still names the metric
            out.append(Verdict("test R²", test["r2"], None, True, f"{where}.minR2"))
        return out
    metric = "test per-label accuracy" if task == MULTILABEL else "test accuracy"
    return [Verdict(metric, test["accuracy"], float(train_spec.min_accuracy), True, f"{where}.minAccuracy")]


def conversion_verdicts(
    task: str, reference: np.ndarray, candidate: np.ndarray, accuracy_spec: Any
) -> list[Verdict]:
    """The conversion gate for regression and multilabel: a candidate's outputs against the fp32 model's."""
    where = "spec.engine.accuracy"
    if task == REGRESSION:
        limit = accuracy_spec.min_r2 if accuracy_spec.min_r2 is not None else DEFAULT_CONVERSION_MIN_R2
        out = [Verdict("R² against fp32", r2(reference, candidate), float(limit), True, f"{where}.minR2")]
        if accuracy_spec.max_mae is not None:
            mae = float(np.mean(np.abs(_as_rows(reference) - _as_rows(candidate)))) if len(reference) else 0.0
            out.append(
                Verdict("MAE against fp32", mae, float(accuracy_spec.max_mae), False, f"{where}.maxMae")
            )
        return out
    if task == MULTILABEL:
        limit = accuracy_spec.max_label_disagreement
        limit = DEFAULT_MAX_LABEL_DISAGREEMENT if limit is None else limit
        disagreement = 1.0 - agreement(task, reference, candidate)
        return [
            Verdict(
                "label disagreement with fp32",
                disagreement,
                float(limit),
                False,
                f"{where}.maxLabelDisagreement",
            )
        ]
    raise ValueError(f"conversion_verdicts covers regression and multilabel, not {task!r}")
