"""The accuracy gate: each transformed network against the fp32 reference, in onnxruntime on CPU.

On `engine.accuracy.samples` held-out rows it measures, against the fp32 model's outputs:

- `top1Drop`: the share of rows whose top-1 class differs (mismatching rows / rows). The class of a row
  is the argmax of a vector output; an output of one value per row is a class itself when it is an
  integer or boolean (a row differs when any of its values differs: class indices are compared exactly),
  else a binary classifier's score: probability > 0.5 when every value lies in [0, 1], logit > 0 otherwise;
- `maxAbsDiff`: the largest absolute difference of any output value (what a user of the probabilities,
  a threshold or a ranking sees);
- `meanKl`: the mean KL divergence KL(fp32 || candidate) in nats, when the outputs are probability
  distributions (non-negative rows summing to 1), else null.

For `spec.model.task: regression` and `multilabel` the checks are the task's instead
(trtforge_runtime.tasks.conversion_verdicts: R² against fp32 >= `minR2`, MAE <= `maxMae`; per-label
disagreement <= `maxLabelDisagreement`, plus `maxAbsDiff` on the multilabel probabilities); top-1 and KL
mean nothing there. For classification:
A model with several outputs is judged on every output: each check names its output, and the candidate
passes only when every output passes (top-1 accuracy against the labels is the first output's). A model
with several inputs takes one array per input (`Feeds`, a dict by input name).
Every bound the spec sets (`maxTop1Drop`, `maxAbsDiff`, `maxMeanKl`; null turns one off) must hold:
`value <= limit`, exactly, on the values engine.json reports. Each candidate's report lists every check
(metric, value, limit, passed) and, when rejected, a reason naming the metric that failed. `best` walks
int8, fp16, fp32 and keeps the first that passes (and builds, see command.py); an explicit precision that
fails stops the conversion with the measured values and the limits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime.errors import AccuracyGateError, ConversionError

_log = logging.getLogger(__name__)
EVAL_BATCH = 256
KL_EPS = 1e-12
DISTRIBUTION_TOLERANCE = 1e-3  # |row sum - 1| allowed for outputs to count as probability distributions

# spec name of each bound -> the metric it bounds
METRICS = {"maxTop1Drop": "top1Drop", "maxAbsDiff": "maxAbsDiff", "maxMeanKl": "meanKl"}
BOUNDS = {metric: bound for bound, metric in METRICS.items()}
# the regression and multilabel metrics (trtforge_runtime.tasks) -> their bounds
TASK_METRICS = {
    "R² against fp32": "r2",
    "MAE against fp32": "mae",
    "label disagreement with fp32": "labelDisagreement",
}
BOUNDS |= {"r2": "minR2", "mae": "maxMae", "labelDisagreement": "maxLabelDisagreement"}


Feeds = dict[str, np.ndarray]


def as_feeds(input_name: str | None, x: np.ndarray | Feeds) -> Feeds:
    """The model's inputs by name: `x` itself when it is a dict already, else {input_name: x}."""
    if isinstance(x, dict):
        return dict(x)
    if input_name is None:
        raise ConversionError("an input array without an input name")
    return {input_name: x}


def feed_rows(feeds: Feeds) -> int:
    """The number of rows (the batch dimension) of the inputs."""
    return len(next(iter(feeds.values()))) if feeds else 0


def slice_feeds(feeds: Feeds, index: Any) -> Feeds:
    """The same rows (a slice or an index array) of every input."""
    return {name: np.ascontiguousarray(a[index]) for name, a in feeds.items()}


@dataclass(frozen=True)
class Limits:
    """The bounds of spec.engine.accuracy (None: not enforced)."""

    max_top1_drop: float
    max_abs_diff: float | None = None
    max_mean_kl: float | None = None
    # spec.model.task (regression/multilabel are judged by trtforge_runtime.tasks) and spec.engine.accuracy,
    # which holds the task's bounds (minR2, maxMae, maxLabelDisagreement)
    task: str = "classification"
    accuracy: Any = None

    @classmethod
    def from_spec(cls, accuracy: Any, task: str = "classification") -> Limits:
        return cls(accuracy.max_top1_drop, accuracy.max_abs_diff, accuracy.max_mean_kl, str(task), accuracy)

    def to_json(self) -> dict[str, float | None]:
        return {
            "maxTop1Drop": self.max_top1_drop,
            "maxAbsDiff": self.max_abs_diff,
            "maxMeanKl": self.max_mean_kl,
        }


@dataclass(frozen=True)
class Metrics:
    """How far one candidate's outputs are from the reference's."""

    top1_drop: float
    max_abs_diff: float
    mean_kl: float | None

    def to_json(self) -> dict[str, float | None]:
        return {"top1Drop": self.top1_drop, "maxAbsDiff": self.max_abs_diff, "meanKl": self.mean_kl}


@dataclass(frozen=True)
class Check:
    metric: str
    value: float | None
    limit: float
    passed: bool
    at_least: bool = False  # a lower bound (R²) instead of an upper one
    output: str | None = None  # the output it measures (set when the model has several)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "value": self.value, "limit": self.limit}
        out["passed"] = self.passed
        out |= {"atLeast": True} if self.at_least else {}
        return out | ({"output": self.output} if self.output is not None else {})

    def sentence(self) -> str:
        where = f"output {self.output!r}: " if self.output is not None else ""
        if self.value is None:
            return f"{where}{self.metric} cannot be measured (the outputs are not probability distributions)"
        op = ("<=" if self.passed else ">") if not self.at_least else (">=" if self.passed else "<")
        return f"{where}{self.metric} {self.value:.6g} {op} {self.limit:.6g} ({BOUNDS[self.metric]})"


def sentence(check_json: dict[str, Any]) -> str:
    """A check as engine.json holds it, in words (what `Check.sentence` says)."""
    c = Check(
        str(check_json["metric"]),
        check_json["value"],
        float(check_json["limit"]),
        bool(check_json["passed"]),
        bool(check_json.get("atLeast", False)),
        check_json.get("output"),
    )
    return c.sentence()


def is_distribution(out: np.ndarray) -> bool:
    if not len(out):  # checked first: numpy cannot reshape zero rows to (0, -1)
        return False
    flat = out.reshape(len(out), -1)
    if flat.shape[1] < 2:
        return False
    return bool(np.all(flat >= -1e-6) and np.all(np.abs(flat.sum(axis=1) - 1.0) <= DISTRIBUTION_TOLERANCE))


def mean_kl(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """Mean over rows of KL(reference || candidate) in nats; None unless both are distributions per row."""
    if not (is_distribution(reference) and is_distribution(candidate)):
        return None
    p = np.clip(reference.reshape(len(reference), -1).astype(np.float64), KL_EPS, None)
    q = np.clip(candidate.reshape(len(candidate), -1).astype(np.float64), KL_EPS, None)
    kl = np.sum(p * (np.log(p) - np.log(q)), axis=1)
    return float(max(0.0, np.mean(kl)))


def is_exact(out: np.ndarray) -> bool:
    """Whether `out` holds classes or flags (integer or boolean values), compared exactly, not by argmax."""
    return bool(np.issubdtype(out.dtype, np.integer) or np.issubdtype(out.dtype, np.bool_))


def score_threshold(scores: np.ndarray) -> float:
    """A binary classifier's threshold: 0.5 for probabilities (every value in [0, 1]), else 0 (logits)."""
    return 0.5 if bool(np.all((scores >= 0.0) & (scores <= 1.0))) else 0.0


def classes(out: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The class of each row of a classifier's output (see the module doc: argmax, exact or thresholded);
    `threshold` for one score per row, default: the one `out`'s own values call for."""
    flat = out.reshape(len(out), -1)
    if flat.shape[1] != 1:
        return np.argmax(flat, axis=1)
    column = flat[:, 0]
    if is_exact(out):
        return column
    return column > (score_threshold(column) if threshold is None else threshold)


def disagreeing_rows(reference: np.ndarray, candidate: np.ndarray) -> int:
    """Rows whose class differs; for integer or boolean outputs, rows where any value differs. One score
    per row is thresholded for both on the reference's range (fp16 may round a probability past 1.0)."""
    ref = reference.reshape(len(reference), -1)
    cand = candidate.reshape(len(candidate), -1)
    if is_exact(reference) or is_exact(candidate):
        return int(np.count_nonzero(np.any(ref != cand, axis=1)))
    threshold = score_threshold(ref) if ref.shape[1] == 1 else None
    return int(np.count_nonzero(classes(ref, threshold) != classes(cand, threshold)))


def measure(reference: np.ndarray, candidate: np.ndarray) -> Metrics:
    if not len(reference):  # checked first: numpy cannot reshape zero rows to (0, -1)
        return Metrics(0.0, 0.0, None)
    ref = reference.reshape(len(reference), -1)
    cand = candidate.reshape(len(candidate), -1)
    mismatches = disagreeing_rows(reference, candidate)
    max_abs = float(np.max(np.abs(ref.astype(np.float64) - cand.astype(np.float64))))
    return Metrics(mismatches / len(ref), max_abs, mean_kl(ref, cand))


def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(top-1 drop, max abs diff) of candidate outputs against reference outputs."""
    m = measure(reference, candidate)
    return m.top1_drop, m.max_abs_diff


def judge_outputs(
    reference: np.ndarray, candidate: np.ndarray, limits: Limits
) -> tuple[Metrics, list[Check]]:
    """The metrics and the checks of `candidate` against `reference` for the model's task."""
    from trtforge_runtime import tasks

    metrics = measure(reference, candidate)
    if limits.task == tasks.CLASSIFICATION or limits.accuracy is None:
        return metrics, check(metrics, limits)
    checks = []
    if limits.task == tasks.MULTILABEL and limits.max_abs_diff is not None:
        checks.append(
            Check(
                "maxAbsDiff",
                metrics.max_abs_diff,
                limits.max_abs_diff,
                metrics.max_abs_diff <= limits.max_abs_diff,
            )
        )
    for v in tasks.conversion_verdicts(limits.task, reference, candidate, limits.accuracy):
        assert v.limit is not None
        checks.append(Check(TASK_METRICS[v.metric], v.value, v.limit, v.passed, v.at_least))
    return metrics, checks


def check(metrics: Metrics, limits: Limits) -> list[Check]:
    """One check per bound that is set; a bound passes when the value is at most the limit."""
    values = metrics.to_json()
    out = []
    for bound, limit in limits.to_json().items():
        if limit is None:
            continue
        value = values[METRICS[bound]]
        out.append(Check(METRICS[bound], value, limit, value is not None and value <= limit))
    return out


@dataclass
class GateResult:
    """One candidate precision's measurement, or why it was not measured or not kept (`stage`)."""

    precision: str
    metrics: Metrics | None
    passed: bool
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    accuracy: float | None = None
    reason: str | None = None
    stage: str = "gate"  # gate | target | calibration | build
    per_output: dict[str, Metrics] = field(default_factory=dict)  # with several outputs: each one's

    @property
    def top1_drop(self) -> float:
        return 1.0 if self.metrics is None else self.metrics.top1_drop

    @property
    def max_abs_diff(self) -> float:
        return float("inf") if self.metrics is None else self.metrics.max_abs_diff

    @classmethod
    def skipped(cls, precision: str, stage: str, reason: str) -> GateResult:
        return cls(precision, None, False, reason=reason, stage=stage)

    def reject(self, stage: str, reason: str) -> None:
        self.passed, self.stage, self.reason = False, stage, reason

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"precision": self.precision}
        if self.metrics is not None:
            out |= self.metrics.to_json()
        out |= {"passed": self.passed, "seconds": round(self.seconds, 4)}
        if len(self.per_output) > 1:
            out["outputs"] = {name: m.to_json() for name, m in self.per_output.items()}
        if self.checks:
            out["checks"] = [c.to_json() for c in self.checks]
        if self.accuracy is not None:
            out["accuracy"] = round(self.accuracy, 6)
        if not self.passed:
            out["rejectedBy"] = self.stage
        if self.reason:
            out["reason"] = self.reason
        return out


def session(path: Path) -> Any:
    """A CPU onnxruntime session with few threads (the gate shares the machine with the builders)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(
    path: Path, input_name: str | None, x: np.ndarray | Feeds, output_name: str | None = None
) -> np.ndarray:
    """Outputs of the model at `path` for rows `x` (first output unless named), in EVAL_BATCH chunks."""
    sess = _session_for(path)
    name = output_name or sess.get_outputs()[0].name
    return run_all(path, as_feeds(input_name, x), [name], sess)[name]


def _session_for(path: Path) -> Any:
    try:
        return session(path)
    except Exception as exc:  # onnxruntime's pybind errors (Fail, InvalidArgument...) share no useful base
        raise ConversionError(f"onnxruntime cannot run {path.name} for the accuracy gate: {exc}") from None


def run_all(path: Path, feeds: Feeds, output_names: list[str], sess: Any = None) -> dict[str, np.ndarray]:
    """The named outputs of the model at `path` for the rows of `feeds`, in EVAL_BATCH chunks.

    Float outputs come back as float32, others (INT64 class ids, BOOL masks) in their own dtype.
    """
    sess = sess if sess is not None else _session_for(path)
    rows = feed_rows(feeds)
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in output_names}
    try:
        for i in range(0, rows, EVAL_BATCH):
            values = sess.run(output_names, slice_feeds(feeds, slice(i, i + EVAL_BATCH)))
            for n, v in zip(output_names, values, strict=True):
                chunks[n].append(np.asarray(v))
    except Exception as exc:  # onnxruntime's pybind errors (Fail, InvalidArgument...) share no useful base
        raise ConversionError(f"onnxruntime cannot run {path.name} for the accuracy gate: {exc}") from None
    out = {}
    for n, parts in chunks.items():
        a = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
        out[n] = a.astype(np.float32) if a.dtype.kind == "f" else a
    return out


class Gate:
    """Evaluates candidate networks on fixed rows against the fp32 reference outputs (computed once)."""

    def __init__(
        self,
        reference: Path,
        input_name: str | None,
        output_name: str,
        x: np.ndarray | Feeds,
        limits: Limits | float,
        y: np.ndarray | None = None,
        *,
        output_names: list[str] | None = None,
    ) -> None:
        self.input_name = input_name
        self.output_names = list(output_names or [output_name])
        self.output_name = self.output_names[0]
        self.x = x
        self.feeds = as_feeds(input_name, x)
        self.rows = feed_rows(self.feeds)
        self.y = y
        self.limits = limits if isinstance(limits, Limits) else Limits(float(limits))
        start = time.perf_counter()
        self.references = run_all(reference, self.feeds, self.output_names)
        self.reference = self.references[self.output_name]
        self.reference_seconds = time.perf_counter() - start

    @property
    def max_top1_drop(self) -> float:
        return self.limits.max_top1_drop

    def _accuracy(self, out: np.ndarray) -> float | None:
        if self.y is None or len(self.y) != len(out):
            return None
        if self.limits.task != "classification":  # R² (regression) or per-label accuracy (multilabel)
            from trtforge_runtime import tasks

            return tasks.scores(self.limits.task, out, self.y)[tasks.headline(self.limits.task)]
        return float(np.mean(classes(out) == self.y.reshape(-1)))

    def judge(
        self, precision: str, out: np.ndarray | dict[str, np.ndarray], seconds: float = 0.0
    ) -> GateResult:
        """The result of outputs `out` (same rows as the reference) against every bound, per output.

        `out` is the first output's array, or every output by name.
        """
        if isinstance(out, dict):
            pairs = [(name, self.references[name], got) for name, got in out.items()]
            primary = self.output_name
        else:
            pairs, primary = [("", self.reference, out)], ""
        several = len(pairs) > 1
        per_output: dict[str, Metrics] = {}
        checks: list[Check] = []
        for name, reference, got in pairs:
            metrics, mine = judge_outputs(reference, got, self.limits)
            per_output[name] = metrics
            checks += [replace(c, output=name) for c in mine] if several else mine
        passed = all(c.passed for c in checks)
        failed = [c.sentence() for c in checks if not c.passed]
        reason = None if passed else "accuracy gate: " + "; ".join(failed)
        best = out[primary] if isinstance(out, dict) else out
        return GateResult(
            precision,
            per_output[primary],
            passed,
            checks,
            seconds,
            self._accuracy(best),
            reason,
            per_output=per_output if several else {},
        )

    def evaluate(self, precision: str, path: Path) -> tuple[GateResult, np.ndarray]:
        start = time.perf_counter()
        outs = run_all(path, self.feeds, self.output_names)
        result = self.judge(precision, outs, time.perf_counter() - start)
        out = outs[self.output_name]
        _log.info(
            "gate %s on %d rows: %s: %s",
            precision,
            self.rows,
            "; ".join(c.sentence() for c in result.checks),
            "passed" if result.passed else "rejected",
        )
        return result, out

    def refuse(self, result: GateResult) -> AccuracyGateError:
        failed = [c for c in result.checks if not c.passed]
        names = " / ".join(f"engine.accuracy.{BOUNDS[c.metric]}" for c in failed)
        return AccuracyGateError(
            f"precision {result.precision} rejected by the accuracy gate: "
            + "; ".join(c.sentence() for c in failed)
            + f" ({self.rows} samples; measured top-1 drop {result.top1_drop:.4f}, max abs diff "
            f"{result.max_abs_diff:.3g}); loosen {names} or choose a higher precision"
        )

    def report(self, candidates: list[GateResult], chosen: str, data: str) -> dict[str, Any]:
        return {
            "samples": self.rows,
            "task": self.limits.task,
            **self.limits.to_json(),
            "candidates": [c.to_json() for c in candidates],
            "chosen": chosen,
            "data": data,
            "referenceAccuracy": self._accuracy(self.reference),
            "referenceSeconds": round(self.reference_seconds, 4),
        }
