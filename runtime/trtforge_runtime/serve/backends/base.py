"""The protocol every inference backend implements, so batching and serving never depend on one library.

A backend is synchronous and single-model: `load()` once, then `infer()` with a dict of input arrays whose
first dimension is the batch (at most `metadata().max_batch` rows), `unload()` at shutdown. The batcher calls
`infer` from one worker thread at a time, so implementations need no locking of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from trtforge_runtime.serve.types import TensorSpec


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What a loaded backend serves: tensors (batch dimension -1), batch limit, and labels for /metrics."""

    kind: str  # onnxruntime | tensorrt | tensorrt-rtx
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch: int  # largest batch one infer() call accepts (the engine profile's max)
    labels: dict[str, str] = field(default_factory=dict)  # library version, device, precision, engine file


@runtime_checkable
class Backend(Protocol):
    def load(self) -> None:
        """Allocate everything (sessions, engines, buffers); raise a TrtforgeError when impossible."""

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; outputs are owned by the caller (not overwritten by the next call)."""
        ...

    def unload(self) -> None:
        """Release everything; idempotent."""

    def metadata(self) -> BackendInfo:
        """Metadata of the loaded model."""
        ...
