"""onnxruntime backend: the fallback that runs anywhere (CPU), or on a GPU through the CUDA provider.

It serves `onnxruntime/model.optimized.onnx` of an engine folder when present (else `model.onnx`). On a
CPU-only pod one intra-op thread without spinning is the fastest choice for small models under batching
(spinning threads steal the core the event loop needs); `threads` raises it for big models.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime.errors import ArtifactError, InferenceError
from trtforge_runtime.serve.backends.base import BackendInfo
from trtforge_runtime.serve.types import TensorSpec
from trtforge_runtime.tensors import ORT_TO_V2

log = logging.getLogger(__name__)

try:  # onnxruntime's INVALID_ARGUMENT status, raised by InferenceSession.run
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument as _InvalidArgument
except ImportError:  # pragma: no cover - the serve extra installs onnxruntime

    class _InvalidArgument(Exception):  # type: ignore[no-redef]
        """Never raised: onnxruntime is missing, so no session runs."""


def _spec(arg: Any) -> TensorSpec:
    datatype = ORT_TO_V2.get(arg.type)
    if datatype is None:
        raise ArtifactError(f"ONNX tensor '{arg.name}' has unsupported type {arg.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, datatype, shape)


class OnnxRuntimeBackend:
    kind = "onnxruntime"

    def __init__(
        self,
        model_path: Path,
        *,
        max_batch: int,
        use_gpu: bool = True,
        threads: int = 1,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.model_path = model_path
        self.max_batch = max_batch
        self.use_gpu = use_gpu
        self.threads = threads
        self.labels = dict(labels or {})
        self._session: Any = None
        self._info: BackendInfo | None = None

    def load(self) -> None:
        import onnxruntime as ort

        if not self.model_path.is_file():
            raise ArtifactError(f"onnxruntime model not found: {self.model_path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if self.use_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(self.model_path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ArtifactError(f"onnxruntime cannot load {self.model_path}: {exc}") from None
        inputs = tuple(_spec(a) for a in self._session.get_inputs())
        outputs = tuple(_spec(a) for a in self._session.get_outputs())
        self._output_names = [o.name for o in outputs]
        used = self._session.get_providers()
        self._info = BackendInfo(
            kind=self.kind,
            inputs=inputs,
            outputs=outputs,
            max_batch=self.max_batch,
            labels={
                "backend": self.kind,
                "library_version": ort.__version__,
                "provider": used[0] if used else "",
                "file": str(self.model_path),
                **self.labels,
            },
        )
        log.info("onnxruntime %s loaded %s with %s", ort.__version__, self.model_path, ", ".join(used))

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outputs = self._session.run(self._output_names, inputs)
        except _InvalidArgument as exc:
            # names, datatypes and shapes were checked before the request was queued: what onnxruntime
            # still refuses are the values (an index outside an embedding, a size a Reshape cannot take)
            reason = str(exc).split("Status Message: ", 1)[-1].strip()
            raise InferenceError(f"the model cannot compute on these input values: {reason}") from None
        return dict(zip(self._output_names, outputs, strict=True))

    def unload(self) -> None:
        self._session = None

    def metadata(self) -> BackendInfo:
        if self._info is None:
            raise ArtifactError("onnxruntime backend used before load()")
        return self._info
