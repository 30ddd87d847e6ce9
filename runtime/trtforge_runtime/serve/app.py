"""Turning an engine folder into a served model: read engine.json, pick and load a backend, check the
reference sample, warm up, and wrap the backend in the batcher.

The steps run after the HTTP port is already answering (live, not ready), so a Kubernetes probe sees the
pod alive while a large engine loads. A TensorRT engine that fails to load (wrong library version,
deserialization refused) falls back to onnxruntime with the reason logged, unless `--backend` forced it.
A reference sample that disagrees leaves the model not ready, with the reason in the log, in
`/v2/models/NAME/ready`'s error and in `trtforge_reference_check_passed`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime.artifacts import read_json
from trtforge_runtime.errors import ArtifactError, NotReadyError, TrtforgeError
from trtforge_runtime.serve.backends.base import Backend
from trtforge_runtime.serve.batcher import Batcher
from trtforge_runtime.serve.dataplane import DataPlane, ServedModel
from trtforge_runtime.serve.metrics import ServeMetrics
from trtforge_runtime.serve.selection import ONNXRUNTIME, Selection, onnxruntime_path, select_backend
from trtforge_runtime.serve.settings import ServeSettings
from trtforge_runtime.serve.types import DATATYPES, ModelMetadata, TensorSpec
from trtforge_runtime.serve.verify import check_reference

log = logging.getLogger("trtforge.serve")

ENGINE_FORMAT = "trtforge.engine/v1"
PLATFORMS = {
    "onnxruntime": "onnxruntime_onnx",
    "tensorrt": "tensorrt_plan",
    "tensorrt-rtx": "tensorrt_rtx_plan",
}


def read_engine_doc(engine_dir: Path) -> dict[str, Any]:
    if not engine_dir.is_dir():
        raise ArtifactError(f"engine folder not found: {engine_dir}")
    doc = read_json(engine_dir / "engine.json", "engine.json")
    if doc.get("format") != ENGINE_FORMAT:
        raise ArtifactError(
            f"{engine_dir / 'engine.json'}: format is {doc.get('format')!r}, expected {ENGINE_FORMAT!r}"
        )
    return doc


def declared_metadata(doc: dict[str, Any], name: str, version: str, kind: str) -> ModelMetadata:
    """Metadata from engine.json's model section (used until the backend has loaded)."""
    model = doc.get("model") or {}
    try:
        inputs = tuple(TensorSpec.from_json(t) for t in model.get("inputs") or [])
        outputs = tuple(TensorSpec.from_json(t) for t in model.get("outputs") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"engine.json model.inputs/outputs are malformed: {exc}") from None
    return ModelMetadata(name, (version,), PLATFORMS.get(kind, kind), inputs, outputs)


def make_backend(selection: Selection, settings: ServeSettings, doc: dict[str, Any]) -> Backend:
    batch_max = int((doc.get("batch") or {}).get("max", 256))
    labels = {
        "precision": str(doc.get("precision", "")),
        "compute_capability": selection.compute_capability or "",
    }
    if selection.kind == ONNXRUNTIME:
        from trtforge_runtime.serve.backends.onnxruntime import OnnxRuntimeBackend

        labels["precision"] = str((doc.get("onnxruntime") or {}).get("precision", labels["precision"]))
        return OnnxRuntimeBackend(
            selection.path, max_batch=batch_max, threads=settings.ort_threads, labels=labels
        )
    from trtforge_runtime.serve.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(selection.path, selection.kind, device=settings.device, labels=labels)


@dataclass
class LoadedModel:
    backend: Backend
    batcher: Batcher
    selection: Selection


@dataclass
class ModelPlane:
    """One engine folder's model before its backend loads: the metrics, the data plane with the model
    registered as loading (its requests answer 503), engine.json, and the name it is served under. What
    every front end starts from: `trtforge serve`'s Server, and benchmarks/apps/trtforge_asgi.py."""

    settings: ServeSettings
    metrics: ServeMetrics
    dataplane: DataPlane
    doc: dict[str, Any]
    name: str

    @classmethod
    def build(cls, settings: ServeSettings) -> ModelPlane:
        metrics = ServeMetrics()
        dataplane = DataPlane(metrics, request_timeout=settings.request_timeout_seconds)
        doc = read_engine_doc(settings.engine_dir)
        name = settings.name or str(doc.get("name") or "model")

        async def not_loaded(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            raise NotReadyError(f"model '{name}' is not loaded")

        version = settings.model_version
        dataplane.add_model(
            ServedModel(
                name=name,
                version=version,
                metadata=declared_metadata(doc, name, version, "onnxruntime"),
                infer=not_loaded,
                ready=False,
                reason="loading",
            )
        )
        return cls(settings, metrics, dataplane, doc, name)

    async def load(self) -> LoadedModel | None:
        """Load, verify and warm up the backend (`load_model`); the model turns ready when it passes."""
        return await load_model(self.settings, self.dataplane, self.metrics, self.doc, self.name)


def with_profiles(loaded: tuple[TensorSpec, ...], declared: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    """The backend's inputs with engine.json's optimization profiles (declared metadata) attached."""
    profiles = {t.name: t for t in declared if t.min_shape is not None}
    return tuple(
        dataclasses.replace(t, min_shape=profiles[t.name].min_shape, max_shape=profiles[t.name].max_shape)
        if t.name in profiles
        else t
        for t in loaded
    )


def _warmup(backend: Backend, runs: int, limit: int, declared: tuple[TensorSpec, ...] = ()) -> None:
    info = backend.metadata()
    smallest = {t.name: t.min_shape for t in declared if t.min_shape is not None}
    for rows in sorted({1, limit}):
        arrays = {
            t.name: np.zeros(
                (rows, *[max(d, 1) for d in (smallest.get(t.name) or t.shape)[1:]]),
                dtype=DATATYPES[t.datatype],
            )
            for t in info.inputs
        }
        for _ in range(runs):
            backend.infer(arrays)


async def load_model(
    settings: ServeSettings, dataplane: DataPlane, metrics: ServeMetrics, doc: dict[str, Any], name: str
) -> LoadedModel | None:
    """Load, verify and warm up; registers readiness on `dataplane`. None when the model cannot serve."""
    engine_dir = settings.engine_dir
    selection = select_backend(
        engine_dir,
        doc,
        forced=settings.backend,
        compute_capability=settings.compute_capability,
        device=settings.device,
    )
    log.info("model %s: backend %s (%s): %s", name, selection.kind, selection.path, selection.reason)
    backend = make_backend(selection, settings, doc)
    try:
        await asyncio.to_thread(backend.load)
    except TrtforgeError as exc:
        if selection.kind == ONNXRUNTIME or settings.backend != "auto":
            raise
        reason = f"{selection.kind} engine {selection.path} failed to load: {exc}"
        log.warning("model %s: falling back to onnxruntime: %s", name, reason)
        selection = Selection(
            ONNXRUNTIME, onnxruntime_path(engine_dir, doc), f"onnxruntime fallback: {reason}", None
        )
        backend = make_backend(selection, settings, doc)
        await asyncio.to_thread(backend.load)
    info = backend.metadata()
    metrics.backend_info.labels(name).info({"reason": selection.reason[:200], **info.labels})
    served = dataplane.models[name]
    served.set_metadata(
        ModelMetadata(
            name,
            (settings.model_version,),
            PLATFORMS.get(info.kind, info.kind),
            with_profiles(info.inputs, served.metadata.inputs),
            info.outputs,
        )
    )

    check = await asyncio.to_thread(check_reference, backend.infer, doc.get("referenceSample"))
    metrics.reference_diff.labels(name, info.kind).set(check.max_abs_diff)
    metrics.reference_ok.labels(name, info.kind).set(1 if check.ok else 0)
    if not check.ok:
        reason = f"{info.kind} output disagrees with engine.json referenceSample: {check.message}"
        log.error("model %s NOT READY: %s", name, reason)
        dataplane.set_ready(name, False, reason)
        return LoadedModel(backend, _batcher(backend, settings, metrics, name), selection)
    log.info("model %s: %s", name, check.message)

    batcher = _batcher(backend, settings, metrics, name)
    await asyncio.to_thread(_warmup, backend, settings.warmup_runs, batcher.limit, served.metadata.inputs)
    batcher.start()
    served.infer = batcher.infer
    dataplane.set_ready(name, True)
    log.info(
        "model %s ready: %s, batching up to %d rows (profile max %d) or %d µs, queue %d",
        name,
        info.kind,
        batcher.limit,
        batcher.profile_max,
        settings.max_queue_delay_microseconds,
        settings.max_queue_size,
    )
    return LoadedModel(backend, batcher, selection)


def _batcher(backend: Backend, settings: ServeSettings, metrics: ServeMetrics, name: str) -> Batcher:
    return Batcher(
        backend,
        model=name,
        max_batch_size=settings.max_batch_size,
        max_queue_delay_us=settings.max_queue_delay_microseconds,
        max_queue_size=settings.max_queue_size,
        metrics=metrics,
        use_thread=(
            settings.backend_thread
            if settings.backend_thread is not None
            else backend.metadata().kind != ONNXRUNTIME
        ),
    )
