"""TensorRT for RTX: ahead-of-time engines built on any machine (no GPU needed) per compute capability.

The build targets one architecture per engine with `config.set_compute_capability(SMxx, 0)`; TensorRT-RTX
1.x targets SM75 (not for FP32 GEMMs), SM80, SM86, SM89, SM120 and SM121, and its runtime refuses 9.0
(Hopper). Its timing-cache calls are no-ops, so none is used.
"""

from __future__ import annotations

from typing import Any, ClassVar

from trtforge_runtime.convert.builders.base import TensorRTFamilyBuilder
from trtforge_runtime.trt import library


class RtxBuilder(TensorRTFamilyBuilder):
    backend: ClassVar[str] = library.TENSORRT_RTX
    uses_timing_cache: ClassVar[bool] = False

    def check_target(self, compute_capability: str, precision: str) -> None:
        library.check_rtx_target(compute_capability, precision)

    def select_targets(self, requested: list[str]) -> list[str]:
        return list(requested)  # ahead of time: every requested architecture is built here

    def configure_target(self, trt: Any, config: Any, compute_capability: str) -> None:
        config.num_compute_capabilities = 1
        config.set_compute_capability(library.rtx_compute_capability(compute_capability), 0)
