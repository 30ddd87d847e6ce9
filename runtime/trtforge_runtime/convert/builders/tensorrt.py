"""Full TensorRT (10.x/11.x): engines built on the GPU they will run on, then run on the gate's rows.

A TensorRT engine is specific to the GPU architecture it was built on, so this builder builds for the GPU
of the machine it runs on and refuses when that GPU's compute capability is not among the requested ones
(the operator runs one conversion Job per architecture, on a matching node). Everything network-related is
shared with TensorRT-RTX (`base.TensorRTFamilyBuilder`); this module adds the device query, a persistent
timing cache, and the post-build verification with the serving runtime's `EngineRunner` (pycuda buffers):
every output of the engine, judged against the fp32 model by the accuracy gate's bounds.
The `tensorrt` wheel is not installable on this project's CI machines; the code follows the documented
TensorRT 10/11 Python API and its library-free logic is unit-tested.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from trtforge_runtime.convert.builders.base import TensorRTFamilyBuilder, VerifySamples
from trtforge_runtime.convert.gate import Feeds, feed_rows, slice_feeds
from trtforge_runtime.errors import AccuracyGateError, ConversionError, UnsupportedTargetError
from trtforge_runtime.trt import library


def current_compute_capability(device: int = 0) -> str:
    """Compute capability of CUDA device `device` (pycuda, else nvidia-smi), the GPU the build runs on."""
    cc, how = library.detect_compute_capability(device)
    if cc is None:
        raise ConversionError(
            f"backend tensorrt builds on the GPU it targets, but CUDA device {device} was not found here "
            f"({how}); run the conversion on a GPU node, or use backend tensorrt-rtx / onnxruntime"
        )
    return cc


def select_device_target(requested: list[str], device: str) -> list[str]:
    """[device] when the GPU's compute capability is requested, else refuse naming both."""
    normalized = {
        library.format_compute_capability(*library.parse_compute_capability(cc)) for cc in requested
    }
    dev = library.format_compute_capability(*library.parse_compute_capability(device))
    if dev not in normalized:
        raise UnsupportedTargetError(
            f"this GPU has compute capability {dev}, which is not among the requested "
            f"{', '.join(sorted(normalized))}; TensorRT engines are built on the GPU they target: run the "
            f"conversion on a node with one of those GPUs, or add {dev} to engine.computeCapabilities"
        )
    return [dev]


class TensorRTBuilder(TensorRTFamilyBuilder):
    backend: ClassVar[str] = library.TENSORRT
    uses_timing_cache: ClassVar[bool] = True

    def __init__(self, device: Callable[[], str] = current_compute_capability) -> None:
        self._device = device

    def check_target(self, compute_capability: str, precision: str) -> None:
        library.parse_compute_capability(compute_capability)

    def select_targets(self, requested: list[str]) -> list[str]:
        return select_device_target(requested, self._device())

    def configure_target(self, trt: Any, config: Any, compute_capability: str) -> None:
        # The engine is built for the GPU in this machine; select_targets made sure it is the requested one.
        return None

    def verify(self, engine: Path, samples: VerifySamples) -> dict[str, Any] | None:
        """Run the built engine on the gate rows (pycuda, via the serving runtime): every output holds the
        gate's bounds against the fp32 model."""
        from trtforge_runtime.trt.runner import EngineRunner  # serving's runner; needs pycuda and a GPU

        runner = EngineRunner(engine, self.backend)
        runner.load()
        try:
            outputs = engine_outputs(runner, samples.gate.feeds, samples.gate.output_names)
        finally:
            runner.close()
        return judge_engine(f"the built {self.backend} engine {engine.name}", samples, outputs)


class Runner(Protocol):
    """What verification needs of an engine: `trt.runner.EngineRunner`'s `max_batch` and `run`."""

    @property
    def max_batch(self) -> int: ...

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def engine_outputs(runner: Runner, feeds: Feeds, output_names: list[str]) -> dict[str, np.ndarray]:
    """Every named output of the engine for the rows of `feeds` (one array per input), in chunks no larger
    than its profile allows; float outputs as float32, others (INT64 classes, BOOL) in their own dtype."""
    limit = max(1, runner.max_batch)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in output_names}
    for i in range(0, feed_rows(feeds), limit):
        result = runner.run(slice_feeds(feeds, slice(i, i + limit)))
        missing = [name for name in output_names if name not in result]
        if missing:
            raise ConversionError(
                f"the engine has no output {', '.join(map(repr, missing))} (its outputs: "
                f"{', '.join(result)}); the model's outputs must survive the build"
            )
        for name in output_names:
            chunks[name].append(np.asarray(result[name]))
    out = {}
    for name, parts in chunks.items():
        array = np.concatenate(parts)
        out[name] = array.astype(np.float32) if array.dtype.kind == "f" else array
    return out


def judge_engine(what: str, samples: VerifySamples, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The verification report of an engine's `outputs` on the gate rows: every output judged against
    the fp32 reference by the gate's bounds; AccuracyGateError naming each output that fails."""
    result = samples.gate.judge(samples.precision, outputs)
    if not result.passed:
        failed = [c.sentence() for c in result.checks if not c.passed]
        raise AccuracyGateError(
            f"{what} disagrees with the fp32 model on {samples.gate.rows} rows: {'; '.join(failed)}"
        )
    return {"rows": samples.gate.rows, **result.to_json()}
