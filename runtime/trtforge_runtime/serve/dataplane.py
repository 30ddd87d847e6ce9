"""The transport-neutral Open Inference Protocol data plane shared by the REST and gRPC front ends.

Front ends decode their wire format into `types.InferRequest`, call `DataPlane` and encode what it returns
(or the `InferenceError` it raises: 400 bad input, 404 unknown model/version, 503 not ready/overloaded,
504 timeout). Here a request is checked against the model's metadata (tensor names, datatypes, shapes,
with messages that name the tensor and the expected vs received value), counted in the metrics, bounded
by the per-request timeout and handed to the model's batcher; the requested outputs are selected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtforge_runtime import __version__
from trtforge_runtime.errors import (
    InferenceError,
    ModelNotFoundError,
    NotReadyError,
    RequestTimeoutError,
    TrtforgeError,
)
from trtforge_runtime.serve.metrics import ServeMetrics
from trtforge_runtime.serve.types import InferRequest, InferResponse, ModelMetadata, Tensor, TensorSpec

Arrays = dict[str, np.ndarray]
InferFn = Callable[[Arrays], Awaitable[Arrays]]

EXTENSIONS = ["binary_tensor_data"]


@dataclass(slots=True)
class ServedModel:
    """One model as the data plane serves it; `infer` is normally `Batcher.infer`."""

    name: str
    version: str
    metadata: ModelMetadata
    infer: InferFn
    ready: bool = False
    reason: str = "loading"  # why it is not ready (shown in logs and the ready endpoint's error)
    labels: dict[str, str] = field(default_factory=dict)
    input_specs: dict[str, TensorSpec] = field(init=False)
    output_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.set_metadata(self.metadata)

    def set_metadata(self, metadata: ModelMetadata) -> None:
        """Replace the metadata (e.g. with the loaded backend's) and the lookups derived from it."""
        self.metadata = metadata
        self.input_specs = {t.name: t for t in metadata.inputs}
        self.output_names = [t.name for t in metadata.outputs]


class DataPlane:
    def __init__(
        self,
        metrics: ServeMetrics | None = None,
        *,
        server_name: str = "trtforge",
        server_version: str = __version__,
        request_timeout: float | None = 30.0,
    ) -> None:
        self.metrics = metrics or ServeMetrics()
        self.server_name = server_name
        self.server_version = server_version
        self.request_timeout = request_timeout
        self.models: dict[str, ServedModel] = {}
        self.draining = False
        self.inflight = 0
        self._inflight_counts: dict[str, int] = {}
        # per-request deadlines, expired by one timer (see _bounded)
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._tick = min(0.05, (request_timeout or 1.0) / 4)
        # with several worker processes: whether the others are ready too (set by the worker)
        self.peers_ready: Callable[[], bool] | None = None
        # prometheus-client's labels() costs microseconds per call: resolve each child once
        self._children: dict[tuple[str, ...], Any] = {}

    # ------------------------------------------------------------------------------------------ registry
    def add_model(self, model: ServedModel) -> None:
        self.models[model.name] = model
        self.set_ready(model.name, model.ready, model.reason)

    def set_ready(self, name: str, ready: bool, reason: str = "") -> None:
        model = self.models[name]
        model.ready = ready
        model.reason = "" if ready else reason
        self.metrics.ready.labels(name).set(1 if ready else 0)

    def begin_drain(self) -> None:
        """SIGTERM: report not ready at once; requests already admitted (and late ones) still complete."""
        self.draining = True
        self.metrics.draining.set(1)

    def get_model(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise ModelNotFoundError(f"unknown model '{name}' (served models: {known})")
        if version not in (None, "", model.version):
            raise ModelNotFoundError(
                f"unknown version '{version}' of model '{name}' (available versions: {model.version})"
            )
        return model

    # ---------------------------------------------------------------------------------------- health/meta
    # Synchronous (no I/O): REST answers them inside its parser callback, gRPC from its handlers.
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Every model ready and no SIGTERM seen (with workers: every worker's models ready)."""
        return self.ready_here() and (self.peers_ready is None or self.peers_ready())

    def ready_here(self) -> bool:
        """This process's models ready and no SIGTERM seen."""
        return not self.draining and bool(self.models) and all(m.ready for m in self.models.values())

    def server_metadata(self) -> dict[str, Any]:
        return {"name": self.server_name, "version": self.server_version, "extensions": list(EXTENSIONS)}

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        return self.get_model(name, version).metadata.to_json()

    def model_ready(self, name: str, version: str | None = None) -> bool:
        return not self.draining and self.get_model(name, version).ready

    # --------------------------------------------------------------------------------------------- infer
    def record(self, model: str, protocol: str, code: int) -> None:
        """Count a request a front end answered itself (malformed body, oversize...)."""
        self._child("requests", model, protocol, str(code)).inc()

    def _inflight_gauge(self, label: str) -> Any:
        """The in-flight gauge to inc/dec per request, or None where it reads the counts at scrape time.

        In one process the gauge is a function of `_inflight_counts` (two metric updates per request
        saved); with several worker processes each worker's value lives in prometheus-client's
        multiprocess files, so there it is updated per request.
        """
        key = ("inflight", label)
        if key not in self._children:
            child: Any = self.metrics.inflight.labels(label)
            if self.metrics.multiprocess_dir is None:
                counts = self._inflight_counts
                child.set_function(lambda: counts.get(label, 0))
                child = None
            self._children[key] = child
        return self._children[key]

    def _child(self, metric: str, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = getattr(self.metrics, metric).labels(*labels)
        return child

    async def infer(
        self, name: str, version: str | None, request: InferRequest, protocol: str = "rest"
    ) -> InferResponse:
        started = time.perf_counter()
        label = name if name in self.models else "<unknown>"
        gauge = self._inflight_gauge(label)
        if gauge is not None:
            gauge.inc()
        counts = self._inflight_counts
        counts[label] = counts.get(label, 0) + 1
        self.inflight += 1
        code = 200
        try:
            model = self.get_model(name, version)
            if not model.ready:
                raise NotReadyError(f"model '{name}' is not ready: {model.reason or 'loading'}")
            inputs = self._check_inputs(model, request)
            wanted = self._check_outputs(model, request)
            outputs = await self._bounded(model.infer(inputs), name)
            return InferResponse(
                model_name=model.name,
                model_version=model.version,
                outputs=[Tensor.of(out, outputs[out]) for out, _ in wanted],
                id=request.id,
            )
        except TrtforgeError as exc:
            code = exc.http_status
            raise
        except Exception:
            code = 500
            raise
        finally:
            self.inflight -= 1
            counts[label] -= 1
            if gauge is not None:
                gauge.dec()
            self._child("requests", label, protocol, str(code)).inc()
            self._child("latency", label, protocol).observe(time.perf_counter() - started)

    async def _bounded(self, call: Awaitable[Arrays], name: str) -> Arrays:
        """Await `call` for at most `request_timeout` seconds (RequestTimeoutError after that).

        asyncio.timeout costs a timer and a context object per request; here each request costs a dict
        entry, and one timer (armed only while requests are in flight) expires them every `_tick`.
        """
        task = asyncio.current_task()
        if not self.request_timeout or task is None:
            return await call
        cancelling = task.cancelling()
        self._deadlines[task] = time.monotonic() + self.request_timeout
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._tick, self._expire)
        try:
            return await call
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                if task.uncancel() <= cancelling:
                    raise RequestTimeoutError(
                        f"model '{name}': request timed out after {self.request_timeout:g} s"
                    ) from None
            raise
        finally:
            self._deadlines.pop(task, None)

    def _expire(self) -> None:
        self._timer = None
        now = time.monotonic()
        for task, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[task]
                self._expired.add(task)
                task.cancel()
        if self._deadlines:
            self._timer = asyncio.get_running_loop().call_later(self._tick, self._expire)

    @staticmethod
    def _check_inputs(model: ServedModel, request: InferRequest) -> Arrays:
        specs = model.input_specs
        arrays: Arrays = {}
        for tensor in request.inputs:
            name = tensor.name
            spec = specs.get(name)
            if spec is None:
                raise InferenceError(
                    f"unknown input tensor '{name}' for model '{model.name}' "
                    f"(expected inputs: {', '.join(specs)})"
                )
            if name in arrays:
                raise InferenceError(f"input tensor '{name}' given more than once")
            if tensor.datatype != spec.datatype:
                raise InferenceError(
                    f"input tensor '{name}': expected datatype {spec.datatype}, received {tensor.datatype}"
                )
            shape = tensor.shape
            want = spec.shape
            if len(shape) != len(want):
                raise _shape_error(name, want, shape)
            for w, g in zip(want, shape, strict=True):
                if w != g and w != -1:
                    raise _shape_error(name, want, shape)
            if shape and shape[0] < 1:
                raise InferenceError(f"input tensor '{name}': the batch dimension must be at least 1")
            if spec.min_shape is not None and spec.max_shape is not None:
                _check_profile(name, spec, shape)
            if tensor.data.shape != shape:  # a front end bug, never the client's
                raise InferenceError(
                    f"input tensor '{name}': data has shape {list(tensor.data.shape)}, declared {list(shape)}"
                )
            arrays[name] = tensor.data
        if len(arrays) != len(specs):
            missing = [n for n in specs if n not in arrays]
            raise InferenceError(
                f"missing input tensor(s) {', '.join(repr(n) for n in missing)} for model '{model.name}'"
            )
        if len(arrays) > 1:
            batch = {a.shape[0] for a in arrays.values()}
            if len(batch) > 1:
                raise InferenceError(f"input tensors disagree on the batch dimension: {sorted(batch)}")
        return arrays

    @staticmethod
    def _check_outputs(model: ServedModel, request: InferRequest) -> list[tuple[str, dict[str, Any]]]:
        names = model.output_names
        if not request.outputs:
            return [(n, {}) for n in names]
        wanted = []
        for out in request.outputs:
            if out.name not in names:
                raise InferenceError(
                    f"unknown output tensor '{out.name}' for model '{model.name}' "
                    f"(available outputs: {', '.join(names)})"
                )
            wanted.append((out.name, out.parameters))
        return wanted


def _check_profile(name: str, spec: TensorSpec, shape: tuple[int, ...]) -> None:
    """Dimensions after the batch within the engine's optimization profile (the batcher splits batches)."""
    assert spec.min_shape is not None and spec.max_shape is not None
    for i, (lo, got, hi) in enumerate(zip(spec.min_shape, shape, spec.max_shape, strict=False)):
        if i and not lo <= got <= hi:
            raise InferenceError(
                f"input tensor '{name}': dimension {i} is {got}, outside the engine's profile {lo}..{hi} "
                f"(shape {list(shape)}; profile min {list(spec.min_shape)}, max {list(spec.max_shape)})"
            )


def _shape_error(name: str, want: tuple[int, ...], got: tuple[int, ...]) -> InferenceError:
    return InferenceError(f"input tensor '{name}': expected shape {list(want)}, received {list(got)}")
