"""Start-up check: does the engine picked on this node reproduce engine.json's `referenceSample`?

`trtforge convert` stores a few input rows and the outputs the chosen network gave in onnxruntime. The
server runs those inputs through its backend before it reports ready; outputs further than `atol` away,
or different top-1 classes, mean a broken or mismatched engine (wrong GPU, wrong library version, corrupt
file), and the server stays not ready with a log line and `trtforge_reference_check_passed 0` rather than
serving wrong answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtforge_runtime.errors import ArtifactError, TrtforgeError
from trtforge_runtime.serve.types import array_from_list, check_shape

Arrays = dict[str, np.ndarray]
DEFAULT_ATOL = 1e-3


@dataclass(frozen=True, slots=True)
class ReferenceCheck:
    ok: bool
    message: str
    max_abs_diff: float = 0.0
    skipped: bool = False


def _tensors(section: Any, what: str) -> Arrays:
    if not isinstance(section, dict) or not section:
        raise ArtifactError(f"engine.json referenceSample.{what} must be a non-empty object")
    out: Arrays = {}
    for name, t in section.items():
        if not isinstance(t, dict):
            raise ArtifactError(f"engine.json referenceSample.{what}.{name} must be an object")
        try:
            shape = check_shape(name, t.get("shape"))
            out[name] = array_from_list(name, str(t.get("datatype")), shape, t.get("data"))
        except TrtforgeError as exc:
            raise ArtifactError(f"engine.json referenceSample.{what}: {exc}") from None
    return out


def check_reference(infer: Callable[[Arrays], Arrays], reference: dict[str, Any] | None) -> ReferenceCheck:
    """Run `reference["inputs"]` through `infer` and compare with `reference["outputs"]`."""
    if not reference:
        return ReferenceCheck(True, "engine.json has no referenceSample; output check skipped", skipped=True)
    inputs = _tensors(reference.get("inputs"), "inputs")
    expected = _tensors(reference.get("outputs"), "outputs")
    atol = float(reference.get("atol", DEFAULT_ATOL))
    try:
        got = infer(inputs)
    except Exception as exc:
        return ReferenceCheck(
            False, f"the reference sample failed to run: {type(exc).__name__}: {exc}", np.inf
        )
    worst = 0.0
    problems = []
    for name, want in expected.items():
        if name not in got:
            problems.append(f"output '{name}' missing (backend returned {', '.join(got)})")
            continue
        have = np.asarray(got[name])
        if have.shape != want.shape:
            problems.append(f"output '{name}': shape {list(have.shape)}, expected {list(want.shape)}")
            continue
        diff = np.abs(have.astype(np.float64) - want.astype(np.float64))
        max_diff = float(np.nanmax(diff)) if diff.size else 0.0
        if np.isnan(diff).any():
            max_diff = float("inf")
        worst = max(worst, max_diff)
        if max_diff > atol:
            problems.append(f"output '{name}': max |difference| {max_diff:.3g} > atol {atol:g}")
    top1 = reference.get("top1")
    first = next(iter(expected))
    if first in got and np.asarray(got[first]).ndim >= 2:
        have_top1 = np.asarray(got[first]).reshape(len(got[first]), -1).argmax(axis=1).tolist()
        want_top1 = (
            [int(c) for c in top1]
            if isinstance(top1, list)
            else expected[first].reshape(len(expected[first]), -1).argmax(axis=1).tolist()
        )
        if have_top1 != want_top1:
            problems.append(f"top-1 classes {have_top1}, expected {want_top1}")
    rows = len(next(iter(inputs.values())))
    if problems:
        return ReferenceCheck(False, "; ".join(problems), worst)
    return ReferenceCheck(
        True, f"reference sample of {rows} rows reproduced (max |difference| {worst:.3g})", worst
    )
