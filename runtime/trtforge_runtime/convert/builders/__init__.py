"""Engine builders, one module per backend behind the `EngineBuilder` interface of `base`."""

from __future__ import annotations

from trtforge_runtime.convert.builders.base import EngineBuilder
from trtforge_runtime.errors import UnsupportedTargetError


def builder_for(backend: str) -> EngineBuilder | None:
    """The engine builder of a spec backend; None for onnxruntime (only the ONNX artifact is built)."""
    if backend == "tensorrt-rtx":
        from trtforge_runtime.convert.builders.rtx import RtxBuilder

        return RtxBuilder()
    if backend == "tensorrt":
        from trtforge_runtime.convert.builders.tensorrt import TensorRTBuilder

        return TensorRTBuilder()
    if backend == "onnxruntime":
        return None
    raise UnsupportedTargetError(f"unknown engine backend {backend!r}")
