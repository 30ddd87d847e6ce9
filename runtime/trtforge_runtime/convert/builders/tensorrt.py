"""Full TensorRT (10.x/11.x): engines built on the GPU they will run on, then run on the gate's rows.

A TensorRT engine is specific to the GPU architecture it was built on, so this builder builds for the GPU
of the machine it runs on and refuses when that GPU's compute capability is not among the requested ones
(the operator runs one conversion Job per architecture, on a matching node). Everything network-related is
shared with TensorRT-RTX (`base.TensorRTFamilyBuilder`); this module adds the device query, a persistent
timing cache, and the post-build verification with the serving runtime's `EngineRunner` (pycuda buffers).
The `tensorrt` wheel is not installable on this project's CI machines; the code follows the documented
TensorRT 10/11 Python API and its library-free logic is unit-tested.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from trtforge_runtime.convert.builders.base import TensorRTFamilyBuilder, VerifySamples
from trtforge_runtime.convert.gate import Feeds, as_feeds, feed_rows, judge_outputs, slice_feeds
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
        """Run the built engine on the gate rows (pycuda, via the serving runtime); the gate's bounds hold."""
        outputs = run_engine(engine, self.backend, samples.input_name, samples.output_name, samples.x)
        metrics, checks = judge_outputs(samples.reference, outputs, samples.limits)
        rows = feed_rows(as_feeds(samples.input_name, samples.x))
        report = {"rows": rows, **metrics.to_json(), "checks": [c.to_json() for c in checks]}
        failed = [c.sentence() for c in checks if not c.passed]
        if failed:
            raise AccuracyGateError(
                f"the built {self.backend} engine {engine.name} disagrees with the fp32 model on "
                f"{rows} rows: {'; '.join(failed)}"
            )
        return report


def run_engine(
    engine: Path, backend: str, input_name: str | None, output_name: str, x: np.ndarray | Feeds
) -> np.ndarray:
    """Outputs of a serialized engine for rows `x` (one array, or one per input name), in chunks no
    larger than the engine's profile allows."""
    from trtforge_runtime.trt.runner import EngineRunner  # serving's runner; needs pycuda and a GPU

    runner = EngineRunner(engine, backend)
    runner.load()
    try:
        limit = max(1, runner.max_batch)
        chunks = []
        feeds = as_feeds(input_name, x)
        for i in range(0, feed_rows(feeds), limit):
            result = runner.run(slice_feeds(feeds, slice(i, i + limit)))
            chunks.append(np.asarray(result[output_name], dtype=np.float32))
        return np.concatenate(chunks)
    finally:
        runner.close()
