"""TensorRT and TensorRT-RTX backend: one serialized engine run through `trt.runner.EngineRunner`.

Both libraries share the Python API; `kind` picks the module ("tensorrt" or "tensorrt-rtx"). The engine's
I/O tensors keep the ONNX names, so the V2 metadata comes from the engine itself (datatype and shape,
batch dimension -1) and the batch limit from its optimization profile's max.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trtforge_runtime.errors import ArtifactError
from trtforge_runtime.serve.backends.base import BackendInfo
from trtforge_runtime.serve.types import TensorSpec, datatype_of


class TensorRTBackend:
    def __init__(
        self,
        engine_path: Path,
        kind: str,
        *,
        device: int = 0,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.engine_path = engine_path
        self.kind = kind
        self.device = device
        self.labels = dict(labels or {})
        self._runner = None
        self._info: BackendInfo | None = None

    def load(self) -> None:
        from trtforge_runtime.trt import library
        from trtforge_runtime.trt.runner import EngineRunner

        runner = EngineRunner(self.engine_path, self.kind, device=self.device)
        runner.load()
        self._runner = runner  # type: ignore[assignment]

        def dynamic(shape: tuple[int, ...]) -> tuple[int, ...]:
            return (-1, *shape[1:]) if shape else shape

        inputs = tuple(
            TensorSpec(n, datatype_of(dt), dynamic(shape)) for n, (dt, shape, _) in runner.inputs.items()
        )
        outputs = tuple(
            TensorSpec(n, datatype_of(dt), dynamic(shape)) for n, (dt, shape) in runner.outputs.items()
        )
        self._info = BackendInfo(
            kind=self.kind,
            inputs=inputs,
            outputs=outputs,
            max_batch=runner.max_batch,
            labels={
                "backend": self.kind,
                "library_version": library.version(self.kind),
                "file": str(self.engine_path),
                **self.labels,
            },
        )

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._runner is None:
            raise ArtifactError(f"{self.kind} backend used before load()")
        return self._runner.run(inputs)

    def unload(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def metadata(self) -> BackendInfo:
        if self._info is None:
            raise ArtifactError(f"{self.kind} backend used before load()")
        return self._info
