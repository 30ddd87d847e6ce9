"""Checks of specs that the CRD schema accepts but the cluster pipeline cannot run.

Each failure is an `UnworkableSpecError` naming the field, so the ModelDeployment goes to phase Failed
with a message the user can act on, instead of Jobs that fail later (or never schedule).
"""

from __future__ import annotations

from trtforge_runtime.spec.model import Backend, ModelDeploymentSpec

from trtforge_operator.errors import UnworkableSpecError
from trtforge_operator.settings import OperatorSettings

# TensorRT-RTX 1.7 builds ahead of time for these targets only; its runtime refuses 9.0 (Hopper).
TENSORRT_RTX_TARGETS = ("8.0", "8.6", "8.9", "12.0", "12.1")
# TensorRT 10 supports Turing (7.5) and newer.
TENSORRT_MIN_CC = (7, 5)
CLUSTER_URI_SCHEMES = ("builtin://", "pvc://", "s3://")


def _check_uri(field: str, uri: str, allow_builtin: bool) -> None:
    schemes = CLUSTER_URI_SCHEMES if allow_builtin else CLUSTER_URI_SCHEMES[1:]
    if not uri.startswith(schemes):
        raise UnworkableSpecError(
            field,
            f"{uri!r} is not reachable from a pod in the cluster; use one of "
            + ", ".join(s + "..." for s in schemes),
        )


def check(spec: ModelDeploymentSpec, storage_uri: str, settings: OperatorSettings | None = None) -> None:
    """Raise UnworkableSpecError for the first problem found (`settings`: also what this operator serves)."""
    if not storage_uri.startswith(("pvc://", "s3://")):
        raise UnworkableSpecError(
            "spec.storage.uri",
            f"{storage_uri!r}: the cluster pipeline stores artifacts on pvc://CLAIM/PREFIX or "
            "s3://BUCKET/PREFIX (file:// is for `trtforge local`)",
        )
    model = spec.model
    if model.train is not None and model.train.dataset is not None:
        _check_uri("spec.model.train.dataset.uri", model.train.dataset.uri, allow_builtin=True)
    if model.source is not None:
        _check_uri("spec.model.source.uri", model.source.uri, allow_builtin=False)
        if model.source.dataset is not None:
            _check_uri("spec.model.source.dataset.uri", model.source.dataset.uri, allow_builtin=True)
    engine = spec.engine
    backend = str(engine.backend)
    for i, cc in enumerate(engine.compute_capabilities):
        field = f"spec.engine.computeCapabilities[{i}]"
        if backend == Backend.TENSORRT_RTX and cc not in TENSORRT_RTX_TARGETS:
            raise UnworkableSpecError(
                field,
                f"{cc!r} cannot be targeted by the tensorrt-rtx backend (supported: "
                f"{', '.join(TENSORRT_RTX_TARGETS)}); use backend tensorrt for this GPU",
            )
        if backend == Backend.TENSORRT:
            major, minor = (int(x) for x in cc.split("."))
            if (major, minor) < TENSORRT_MIN_CC:
                raise UnworkableSpecError(field, f"{cc!r} is older than TensorRT's minimum 7.5")
    if backend == Backend.TENSORRT and engine.resources.gpus < 1:
        raise UnworkableSpecError(
            "spec.engine.resources.gpus",
            "the tensorrt backend builds each engine on a GPU of its target architecture and needs gpus >= 1",
        )
    if settings is not None:
        autoscaling = spec.serving.autoscaling
        problem = settings.autoscaling_mode_problem(str(autoscaling.mode)) if autoscaling.enabled else None
        if problem is not None:
            raise UnworkableSpecError("spec.serving.autoscaling.mode", problem)
