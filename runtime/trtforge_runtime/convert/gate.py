"""The accuracy gate: each transformed network against the fp32 reference, in onnxruntime on CPU.

On `engine.accuracy.samples` held-out rows it measures the top-1 agreement with the fp32 model's
predictions (the drop is 1 - agreement) and the largest absolute output difference; above
`maxTop1Drop` a precision is rejected. `best` walks int8, fp16, fp32 and keeps the first that passes;
an explicit precision that fails stops the conversion with the measured drop and the limit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime.errors import AccuracyGateError, ConversionError

_log = logging.getLogger(__name__)
EVAL_BATCH = 256


@dataclass
class GateResult:
    """One candidate precision's measurement."""

    precision: str
    top1_drop: float
    max_abs_diff: float
    passed: bool
    seconds: float = 0.0
    accuracy: float | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "precision": self.precision,
            "top1Drop": round(self.top1_drop, 6),
            "maxAbsDiff": float(f"{self.max_abs_diff:.6g}"),
            "passed": self.passed,
            "seconds": round(self.seconds, 4),
        }
        if self.accuracy is not None:
            out["accuracy"] = round(self.accuracy, 6)
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


def run(path: Path, input_name: str, x: np.ndarray, output_name: str | None = None) -> np.ndarray:
    """Outputs of the model at `path` for rows `x` (first output unless named), in EVAL_BATCH chunks."""
    try:
        sess = session(path)
        name = output_name or sess.get_outputs()[0].name
        chunks = [
            sess.run([name], {input_name: x[i : i + EVAL_BATCH]})[0] for i in range(0, len(x), EVAL_BATCH)
        ]
    except Exception as exc:  # onnxruntime's pybind errors (Fail, InvalidArgument...) share no useful base
        raise ConversionError(f"onnxruntime cannot run {path.name} for the accuracy gate: {exc}") from None
    return np.concatenate(chunks).astype(np.float32)


def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(top-1 drop, max abs diff) of candidate outputs against reference outputs."""
    ref = reference.reshape(len(reference), -1)
    cand = candidate.reshape(len(candidate), -1)
    agreement = float(np.mean(np.argmax(ref, axis=1) == np.argmax(cand, axis=1))) if len(ref) else 1.0
    max_abs = float(np.max(np.abs(ref - cand))) if ref.size else 0.0
    return 1.0 - agreement, max_abs


class Gate:
    """Evaluates candidate networks on fixed rows against the fp32 reference outputs (computed once)."""

    def __init__(
        self,
        reference: Path,
        input_name: str,
        output_name: str,
        x: np.ndarray,
        max_top1_drop: float,
        y: np.ndarray | None = None,
    ) -> None:
        self.input_name = input_name
        self.output_name = output_name
        self.x = x
        self.y = y
        self.max_top1_drop = max_top1_drop
        start = time.perf_counter()
        self.reference = run(reference, input_name, x, output_name)
        self.reference_seconds = time.perf_counter() - start

    def _accuracy(self, out: np.ndarray) -> float | None:
        if self.y is None or len(self.y) != len(out):
            return None
        return float(np.mean(np.argmax(out.reshape(len(out), -1), axis=1) == self.y.reshape(-1)))

    def evaluate(self, precision: str, path: Path) -> tuple[GateResult, np.ndarray]:
        start = time.perf_counter()
        out = run(path, self.input_name, self.x, self.output_name)
        drop, max_abs = compare(self.reference, out)
        seconds = time.perf_counter() - start
        passed = drop <= self.max_top1_drop + 1e-12
        result = GateResult(precision, drop, max_abs, passed, seconds, self._accuracy(out))
        _log.info(
            "gate %s: top-1 drop %.4f (limit %.4f), max abs diff %.3g on %d rows: %s",
            precision, drop, self.max_top1_drop, max_abs, len(self.x), "passed" if passed else "rejected",
        )  # fmt: skip
        return result, out

    def refuse(self, result: GateResult) -> AccuracyGateError:
        return AccuracyGateError(
            f"precision {result.precision} rejected by the accuracy gate: top-1 drop {result.top1_drop:.4f} "
            f"> maxTop1Drop {self.max_top1_drop:.4f} (max abs diff {result.max_abs_diff:.3g}, "
            f"{len(self.x)} samples); raise engine.accuracy.maxTop1Drop or choose a higher precision"
        )

    def report(self, candidates: list[GateResult], chosen: str, data: str) -> dict[str, Any]:
        return {
            "samples": len(self.x),
            "maxTop1Drop": self.max_top1_drop,
            "candidates": [c.to_json() for c in candidates],
            "chosen": chosen,
            "data": data,
            "referenceAccuracy": self._accuracy(self.reference),
            "referenceSeconds": round(self.reference_seconds, 4),
        }
