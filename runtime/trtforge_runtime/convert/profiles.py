"""Optimization profiles of the inputs' dimensions after the batch dimension (spec.engine.inputs).

The batch dimension's profile is `spec.engine.batch`, the same for every input. A model may leave other
dimensions dynamic too (a sequence length, an image size): each such dimension needs a min/opt/max in
`spec.engine.inputs`, and a profile is checked against the model before any work: it must name an input
of the model, give one range per dimension after the batch, and give a fixed dimension exactly its size.
The result (per input: the min, opt and max sizes of its dimensions after the batch) shapes the engine's
optimization profile, the gate's synthetic rows (at opt) and engine.json's `model.inputs[].profile`,
which the server checks request shapes against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trtforge_runtime.errors import ConversionError
from trtforge_runtime.tensors import TensorInfo

Dims = tuple[int, ...]
# per input: (min, opt, max) sizes of the dimensions after the batch dimension
Ranges = dict[str, tuple[Dims, Dims, Dims]]


def input_ranges(inputs: Sequence[TensorInfo], declared: Sequence[Any]) -> Ranges:
    """Every input's dimension ranges after the batch, from the model and spec.engine.inputs."""
    by_name = {t.name: t for t in inputs}
    seen: set[str] = set()
    out: Ranges = {}
    for i, profile in enumerate(declared):
        where = f"spec.engine.inputs[{i}]"
        t = by_name.get(profile.name)
        if t is None:
            raise ConversionError(
                f"{where}.name {profile.name!r} is not an input of the model (inputs: {list(by_name)})"
            )
        if profile.name in seen:
            raise ConversionError(f"{where}.name {profile.name!r}: the input has a profile already")
        seen.add(profile.name)
        rest = t.shape[1:]
        if len(profile.dims) != len(rest):
            raise ConversionError(
                f"{where}.dims has {len(profile.dims)} entries, but input {t.name!r} (shape {list(t.shape)}) "
                f"has {len(rest)} dimensions after the batch dimension"
            )
        for j, (size, d) in enumerate(zip(rest, profile.dims, strict=True)):
            if not d.min <= d.opt <= d.max:
                raise ConversionError(
                    f"{where}.dims[{j}] needs min <= opt <= max, got {d.min}, {d.opt}, {d.max}"
                )
            if size != -1 and not d.min == d.opt == d.max == size:
                raise ConversionError(
                    f"{where}.dims[{j}]: input {t.name!r} fixes dimension {j + 1} at {size} "
                    f"(shape {list(t.shape)}), the profile says min {d.min}, opt {d.opt}, max {d.max}"
                )
        out[t.name] = tuple(tuple(getattr(d, k) for d in profile.dims) for k in ("min", "opt", "max"))  # type: ignore[assignment]
    for t in inputs:
        if t.name in out:
            continue
        rest = t.shape[1:]
        if any(d == -1 for d in rest):
            raise ConversionError(
                f"model input {t.name!r} has dynamic dimensions after the batch dimension (shape "
                f"{list(t.shape)}); give their min/opt/max in spec.engine.inputs "
                f"(name: {t.name}, dims: one entry per dimension after the batch)"
            )
        out[t.name] = (tuple(rest), tuple(rest), tuple(rest))
    return out


def is_dynamic(ranges: Ranges) -> bool:
    """Whether any input has a dimension after the batch whose size may vary."""
    return any(lo != hi for lo, _, hi in ranges.values())


def to_json(t: TensorInfo, ranges: Ranges, batch: tuple[int, int, int]) -> dict[str, Any]:
    """engine.json's description of input `t`, with its profile when a dimension after the batch varies."""
    out = t.to_json()
    lo, opt, hi = ranges[t.name]
    if lo != hi:
        out["profile"] = {
            "min": [batch[0], *lo],
            "opt": [batch[1], *opt],
            "max": [batch[2], *hi],
        }
    return out
