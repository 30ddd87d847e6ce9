"""Running a serialized TensorRT or TensorRT-RTX engine: deserialize with the real library, run with pycuda.

`EngineRunner` deserializes the engine file (a failed `deserialize_cuda_engine` returns None without
raising: the library logger's recorded errors become the message), creates one execution context with
its own CUDA stream, and keeps pinned host + device buffers sized for the optimization profile's max
shapes (`cuda_buffers.StreamBuffers`, allocated once per profile and reused). A call sets the input
shapes (`set_input_shape`), binds the fixed buffer addresses (`set_tensor_address`, once per buffer set),
copies inputs in, `execute_async_v3` on the context's stream, copies outputs out and synchronizes.
Serving's TensorRT backends and conversion's post-build verification both use it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime.errors import ArtifactError, BackendError, InferenceError
from trtforge_runtime.trt import library
from trtforge_runtime.trt.cuda_buffers import BufferPool, BufferSpec, CudaContext, StreamBuffers

log = logging.getLogger(__name__)

# TensorRT DataType member name -> numpy dtype (BF16/FP8/INT4/FP4 tensors are not served over V2)
NUMPY_TYPES: dict[str, np.dtype[Any]] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
}


def numpy_dtype(trt_dtype: Any) -> np.dtype[Any]:
    name = getattr(trt_dtype, "name", str(trt_dtype)).split(".")[-1]
    try:
        return NUMPY_TYPES[name]
    except KeyError:
        raise ArtifactError(
            f"engine tensor type {name} cannot be served (supported: {sorted(NUMPY_TYPES)})"
        ) from None


class EngineRunner:
    """One engine on one GPU; `run()` is safe to call from one thread at a time (a lock enforces it)."""

    def __init__(self, engine_path: Path, backend: str, *, device: int = 0, profile: int = 0) -> None:
        self.engine_path = Path(engine_path)
        self.backend = backend
        self.device = device
        self.profile = profile
        self._lock = threading.Lock()
        self._cuda: CudaContext | None = None
        self._engine: Any = None
        self._context: Any = None
        self._pool = BufferPool()
        self._bound: StreamBuffers | None = None
        self.inputs: dict[str, tuple[np.dtype[Any], tuple[int, ...], tuple[int, ...]]] = {}
        self.outputs: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {}

    # ------------------------------------------------------------------------------------------ loading
    def load(self) -> None:
        trt = library.load(self.backend)
        trt_logger = library.logger(self.backend)
        if not self.engine_path.is_file():
            raise ArtifactError(f"engine file not found: {self.engine_path}")
        blob = self.engine_path.read_bytes()
        self._cuda = CudaContext(self.device)
        with self._cuda.active():
            runtime = trt.Runtime(trt_logger)
            engine = runtime.deserialize_cuda_engine(blob)
            if engine is None:  # the library returns None instead of raising
                errors = "; ".join(trt_logger.take_errors()) or "no error recorded by the library"
                raise ArtifactError(
                    f"{self.backend} {trt.__version__} cannot deserialize {self.engine_path} on "
                    f"{self._cuda.name} (compute capability {self._cuda.compute_capability}): {errors}"
                )
            if not 0 <= self.profile < engine.num_optimization_profiles:
                raise ArtifactError(f"engine has no optimization profile {self.profile}")
            context = engine.create_execution_context()
            if context is None:
                errors = "; ".join(trt_logger.take_errors()) or "out of device memory?"
                raise ArtifactError(f"cannot create an execution context for {self.engine_path}: {errors}")
            self._runtime, self._engine, self._context = runtime, engine, context
            self._describe(trt)
        log.info(
            "%s %s loaded %s on %s: inputs %s, outputs %s",
            self.backend,
            trt.__version__,
            self.engine_path,
            self._cuda.name,
            {k: (str(v[0]), v[2]) for k, v in self.inputs.items()},
            {k: (str(v[0]), v[1]) for k, v in self.outputs.items()},
        )

    def _describe(self, trt: Any) -> None:
        engine, context = self._engine, self._context
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = numpy_dtype(engine.get_tensor_dtype(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                _, _, top = engine.get_tensor_profile_shape(name, self.profile)
                self.inputs[name] = (dtype, tuple(engine.get_tensor_shape(name)), tuple(top))
            else:
                self.outputs[name] = (dtype, tuple(engine.get_tensor_shape(name)))
        # output max shapes follow from the inputs' profile max shapes
        for name, (_, _, top) in self.inputs.items():
            context.set_input_shape(name, top)
        self._output_max = {name: tuple(context.get_tensor_shape(name)) for name in self.outputs}

    @property
    def max_batch(self) -> int:
        return min(top[0] for _, _, top in self.inputs.values()) if self.inputs else 1

    def _specs(self) -> list[BufferSpec]:
        specs = [BufferSpec(n, dt, top, True) for n, (dt, _, top) in self.inputs.items()]
        specs += [BufferSpec(n, self.outputs[n][0], shape, False) for n, shape in self._output_max.items()]
        return specs

    # ------------------------------------------------------------------------------------------ running
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._cuda is None or self._context is None:
            raise BackendError(f"engine {self.engine_path} used before load()")
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise InferenceError(f"missing engine input(s): {', '.join(sorted(missing))}")
        with self._lock, self._cuda.active():
            buffers = self._pool.get(self.profile, self._specs)
            context = self._context
            if self._bound is not buffers:  # addresses are fixed per buffer set: bind once
                for name in (*self.inputs, *self.outputs):
                    context.set_tensor_address(name, buffers.device_address(name))
                self._bound = buffers
            for name, array in inputs.items():
                if name not in self.inputs:
                    raise InferenceError(f"tensor '{name}' is not an engine input ({', '.join(self.inputs)})")
                if not context.set_input_shape(name, tuple(array.shape)):  # False, not an exception
                    raise InferenceError(
                        f"tensor '{name}': shape {list(array.shape)} is outside the engine's optimization "
                        f"profile (max {list(self.inputs[name][2])})"
                    )
            arrays = {n: np.ascontiguousarray(a, dtype=self.inputs[n][0]) for n, a in inputs.items()}

            def enqueue(buf: StreamBuffers) -> dict[str, tuple[int, ...]]:
                if not context.execute_async_v3(buf.stream_handle):
                    errors = "; ".join(library.logger(self.backend).take_errors())
                    raise BackendError(f"execute_async_v3 failed for {self.engine_path}: {errors}")
                return {name: tuple(context.get_tensor_shape(name)) for name in self.outputs}

            return buffers.run(arrays, enqueue, copy=True)

    def close(self) -> None:
        with self._lock:
            if self._cuda is not None:
                with self._cuda.active():
                    self._pool.free()
                    self._context = None
                    self._engine = None
                    self._runtime = None
                self._cuda.close()
                self._cuda = None
            self._bound = None
