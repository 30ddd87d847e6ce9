"""Pinned host and device buffers, a CUDA stream and the async copies between them (pycuda).

The TensorRT backends run an engine through this. For each optimization profile the buffers are sized for
the profile's max shapes and allocated once (page-locked host memory + device memory), then reused by
every request that fits: a request copies only its own bytes host -> device on the stream of its
execution context, the engine is enqueued on that same stream, the outputs come back device -> host on
it, and one synchronize ends the call. Kept apart from TensorRT so that it is tested for real on any CUDA
GPU (the H200 test machine has no TensorRT). pycuda is imported on first use, never at import time.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from trtforge_runtime.errors import InferenceError, LibraryMissingError


def cuda_driver() -> ModuleType:
    """`pycuda.driver`, initialised; LibraryMissingError when pycuda is not installed."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise LibraryMissingError(
            f"pycuda is not installed ({exc}); the TensorRT backends need it: pip install pycuda "
            "(it builds from source where the CUDA toolkit is installed)"
        ) from None
    cuda.init()
    return cuda


@dataclass(frozen=True, slots=True)
class BufferSpec:
    """One engine I/O tensor: its dtype and the largest shape the profile allows."""

    name: str
    dtype: np.dtype[Any]
    max_shape: tuple[int, ...]
    is_input: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.max_shape) * self.dtype.itemsize


class CudaContext:
    """The device's primary context (the one TensorRT's runtime API uses), made current per call.

    pycuda contexts are current per thread; serving calls come from worker threads, so every use goes
    through `with context.active():`.
    """

    def __init__(self, device: int = 0) -> None:
        self._cuda = cuda_driver()
        count = self._cuda.Device.count()
        if device >= count:
            raise LibraryMissingError(f"CUDA device {device} requested, {count} device(s) visible")
        self.device = self._cuda.Device(device)
        self._context = self.device.retain_primary_context()
        self._closed = False

    @property
    def name(self) -> str:
        return str(self.device.name())

    @property
    def compute_capability(self) -> str:
        major, minor = self.device.compute_capability()
        return f"{major}.{minor}"

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        if self._closed:
            raise RuntimeError("CUDA context is closed")
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._context.detach()


class StreamBuffers:
    """Pinned host + device buffers for one profile's max shapes, and the CUDA stream they move on.

    Create and use inside `CudaContext.active()`. Not thread-safe: one per execution context.
    """

    def __init__(self, specs: Sequence[BufferSpec]) -> None:
        cuda = cuda_driver()
        self._cuda = cuda
        self.specs = {s.name: s for s in specs}
        if len(self.specs) != len(specs):
            raise ValueError("duplicate tensor names in buffer specs")
        self.stream = cuda.Stream()
        self._host: dict[str, np.ndarray] = {}
        self._device: dict[str, Any] = {}
        try:
            for s in specs:
                # flat pinned buffer of the max size; requests use a prefix view of it
                self._host[s.name] = cuda.pagelocked_empty(max(1, math.prod(s.max_shape)), s.dtype)
                self._device[s.name] = cuda.mem_alloc(max(1, s.nbytes))
        except BaseException:
            self.free()
            raise

    @property
    def stream_handle(self) -> int:
        """The raw `cudaStream_t` for TensorRT's `execute_async_v3`."""
        return int(self.stream.handle)

    def device_address(self, name: str) -> int:
        return int(self._device[self._spec(name).name])

    def host_buffer(self, name: str) -> np.ndarray:
        """The whole pinned host buffer of a tensor (flat, max size)."""
        return self._host[self._spec(name).name]

    def _spec(self, name: str) -> BufferSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise InferenceError(
                f"tensor '{name}' is not an engine tensor (engine tensors: {', '.join(self.specs)})"
            ) from None

    def _view(self, spec: BufferSpec, shape: Sequence[int]) -> np.ndarray:
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(spec.max_shape) or any(
            d < 0 or d > m for d, m in zip(shape, spec.max_shape, strict=True)
        ):
            raise InferenceError(
                f"tensor '{spec.name}': shape {list(shape)} does not fit the engine profile's max shape "
                f"{list(spec.max_shape)}"
            )
        return self._host[spec.name][: math.prod(shape)].reshape(shape)

    def put_inputs(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Stage inputs in pinned memory and enqueue their host -> device copies on the stream."""
        for name, array in arrays.items():
            spec = self._spec(name)
            if not spec.is_input:
                raise InferenceError(f"tensor '{name}' is an engine output, not an input")
            if array.dtype != spec.dtype:
                raise InferenceError(f"tensor '{name}': expected dtype {spec.dtype}, received {array.dtype}")
            view = self._view(spec, array.shape)
            np.copyto(view, array, casting="no")
            if view.nbytes:
                self._cuda.memcpy_htod_async(self._device[name], view, self.stream)

    def get_outputs(self, shapes: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
        """Enqueue device -> host copies of outputs; the returned pinned views are valid after
        `synchronize()` and until the next call reuses the buffers."""
        out: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            spec = self._spec(name)
            if spec.is_input:
                raise InferenceError(f"tensor '{name}' is an engine input, not an output")
            view = self._view(spec, shape)
            if view.nbytes:
                self._cuda.memcpy_dtoh_async(view, self._device[name], self.stream)
            out[name] = view
        return out

    def synchronize(self) -> None:
        self.stream.synchronize()

    def run(
        self,
        inputs: Mapping[str, np.ndarray],
        enqueue: Callable[[StreamBuffers], Mapping[str, Sequence[int]]],
        *,
        copy: bool = True,
    ) -> dict[str, np.ndarray]:
        """One call: copy inputs in, `enqueue(self)` the work on `self.stream` (it returns the output
        shapes), copy outputs out, synchronize. Returns copies unless `copy=False` (pinned views)."""
        self.put_inputs(inputs)
        output_shapes = enqueue(self)
        views = self.get_outputs(output_shapes)
        self.synchronize()
        return {k: v.copy() for k, v in views.items()} if copy else views

    def free(self) -> None:
        for allocation in self._device.values():
            allocation.free()
        self._device.clear()
        for host in self._host.values():
            base = host.base
            if base is not None and hasattr(base, "free"):
                base.free()
        self._host.clear()


class BufferPool:
    """`StreamBuffers` per key (an optimization profile), allocated on first use and reused after."""

    def __init__(self) -> None:
        self._sets: dict[Hashable, StreamBuffers] = {}
        self._lock = threading.Lock()
        self.allocations = 0

    def get(self, key: Hashable, specs: Callable[[], Sequence[BufferSpec]]) -> StreamBuffers:
        with self._lock:
            buffers = self._sets.get(key)
            if buffers is None:
                buffers = StreamBuffers(specs())
                self._sets[key] = buffers
                self.allocations += 1
            return buffers

    def __len__(self) -> int:
        return len(self._sets)

    def free(self) -> None:
        with self._lock:
            for buffers in self._sets.values():
                buffers.free()
            self._sets.clear()
