"""The one finalizer the operator puts on a ModelDeployment, and only where deletion needs cleanup.

`spec.storage.retainOnDelete: false` with a pvc:// store: the artifacts folder must be removed by a
cleanup Job before the object goes, so the object carries `trtforge.dev/artifacts-cleanup`. Every other
ModelDeployment carries no finalizer at all: with the operator stopped or uninstalled, deleting it (or
its namespace) completes at once, and its children go through their owner references.

The reconcile (leader only) adds or removes the finalizer as the spec says and, once the object is being
deleted, creates the cleanup Job and then removes the finalizer. It also removes kopf's finalizer that
earlier versions put on every object (their per-object autoscaler daemon needed it), so that upgraded
objects do not hang on deletion.
"""

from __future__ import annotations

import logging
from typing import Any

from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec.load import parse_spec
from trtforge_runtime.spec.model import API_VERSION, KIND, ModelDeploymentSpec

from trtforge_operator.apply import Kube
from trtforge_operator.plan import Owner, Plan
from trtforge_operator.reconcilers import cleanup_job
from trtforge_operator.settings import OperatorSettings

log = logging.getLogger(__name__)
FINALIZER = "trtforge.dev/artifacts-cleanup"
LEGACY_FINALIZERS = frozenset({"kopf.zalando.org/KopfFinalizerMarker"})


def needs_cleanup(spec: ModelDeploymentSpec, plan: Plan) -> bool:
    return spec.storage.retain_on_delete is False and cleanup_job.supported(plan)


def wanted_finalizers(current: list[str], cleanup: bool) -> list[str]:
    """The finalizer list with ours present iff `cleanup`, and the legacy kopf one gone."""
    out = [f for f in current if f not in LEGACY_FINALIZERS and f != FINALIZER]
    return [*out, FINALIZER] if cleanup else out


async def set_finalizers(kube: Kube, body: dict[str, Any], finalizers: list[str]) -> dict[str, Any]:
    """Write metadata.finalizers (guarded by resourceVersion: a concurrent change is retried)."""
    meta = body["metadata"]
    patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
    return await kube.patch(API_VERSION, KIND, meta["namespace"], meta["name"], patch)


async def keep_in_line(kube: Kube, body: dict[str, Any], cleanup: bool) -> dict[str, Any]:
    """Add or remove the finalizer as the spec asks; returns the (possibly updated) body."""
    current = list(body["metadata"].get("finalizers") or [])
    wanted = wanted_finalizers(current, cleanup)
    if wanted == current:
        return body
    return await set_finalizers(kube, body, wanted)


async def finalize(kube: Kube, body: dict[str, Any], settings: OperatorSettings) -> None:
    """The object is being deleted: run the cleanup Job if ours is there, then let the object go."""
    meta = body["metadata"]
    current = list(meta.get("finalizers") or [])
    if FINALIZER in current:
        await _start_cleanup(kube, body, settings)
    wanted = wanted_finalizers(current, cleanup=False)
    if wanted != current:
        await set_finalizers(kube, body, wanted)


async def _start_cleanup(kube: Kube, body: dict[str, Any], settings: OperatorSettings) -> None:
    """Create the cleanup Job; a spec that does not parse any more cannot name its folder: kept then."""
    meta = body["metadata"]
    try:
        spec = parse_spec(dict(body.get("spec") or {}))
        owner = Owner(str(meta["name"]), str(meta["namespace"]), str(meta["uid"]))
        plan = Plan.build(owner, spec, settings)
    except (ManifestError, ValueError) as exc:
        log.warning("artifacts of %s/%s are kept: %s", meta["namespace"], meta["name"], exc)
        return
    if not cleanup_job.supported(plan):
        return
    job = cleanup_job.cleanup_job(plan)
    await kube.create(job)  # 409: created by an earlier attempt
    log.info("artifact cleanup Job %s removes %s", job["metadata"]["name"], cleanup_job.folder(plan))
