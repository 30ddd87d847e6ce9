"""kopf handlers: thin adapters from watch events to the reconcile queue.

- ModelDeployment events (added, modified, listed at start-up) trigger its reconcile; the event of the
  operator's own status write is skipped, deletion forgets it (children go with owner references).
- Job and Deployment events, filtered by the `trtforge.dev/modeldeployment` label, trigger their
  owner's reconcile, so a Job completion or a rollout moves the pipeline on within a second.

Watch-event handlers are used instead of kopf's create/update handlers on purpose: those persist their
progress in annotations (an extra write per change) and cannot be triggered by a child's event; here
every trigger path goes through one coalescing queue (`Controller`) with its own retry/backoff.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from trtforge_runtime.spec.model import GROUP, PLURAL, VERSION

from trtforge_operator import labels
from trtforge_operator.apply import Kube
from trtforge_operator.controller import Controller
from trtforge_operator.pipeline import Pipeline
from trtforge_operator.settings import OperatorSettings

log = logging.getLogger(__name__)
CHILD_FILTER: dict[str, Any] = {
    labels.MODELDEPLOYMENT: kopf.PRESENT,
    "app.kubernetes.io/managed-by": labels.MANAGED_BY,
}


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    op = OperatorSettings.from_env()
    settings.batching.worker_limit = op.worker_limit
    # The handlers only enqueue (the Controller does the work), so per-object workers may end at once:
    # with kopf's default 5 s idle timeout, worker_limit objects would hold every worker and the next
    # new ModelDeployment would wait 5 s for one. A short batch window keeps event latency low.
    settings.batching.idle_timeout = 0.5
    settings.batching.batch_window = 0.02
    settings.posting.enabled = False  # kopf's own log-events; the operator posts meaningful ones
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="trtforge.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="trtforge.dev")
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    kube = Kube.from_environment()
    controller = Controller(Pipeline(kube, op), concurrency=op.worker_limit, resync_seconds=op.resync_seconds)
    controller.start()
    memo["trtforge_settings"] = op
    memo["trtforge_kube"] = kube
    memo["trtforge_controller"] = controller
    log.info(
        "trtforge operator: namespaces=%s storage=%s",
        ",".join(op.watch_namespaces) or "<all>",
        op.storage_uri,
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("trtforge_controller")
    if controller is not None:
        await controller.stop()
    kube: Kube | None = memo.get("trtforge_kube")
    if kube is not None:
        kube.close()


def _controller(memo: kopf.Memo) -> Controller:
    controller: Controller = memo["trtforge_controller"]
    return controller


@kopf.on.event(GROUP, VERSION, PLURAL)
async def modeldeployment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    controller = _controller(memo)
    meta = body.get("metadata", {})
    key = (str(meta.get("namespace")), str(meta.get("name")))
    if type == "DELETED":
        controller.forget(key)
        return
    if controller.is_own_write(key, meta.get("resourceVersion")):
        return
    controller.trigger(key)


def _owner_key(body: kopf.Body) -> tuple[str, str]:
    meta = body.get("metadata", {})
    return str(meta.get("namespace")), str((meta.get("labels") or {}).get(labels.MODELDEPLOYMENT))


def _artifacts_not_retained(spec: kopf.Spec, **_: Any) -> bool:
    return (spec.get("storage") or {}).get("retainOnDelete", True) is False


@kopf.on.delete(GROUP, VERSION, PLURAL, when=_artifacts_not_retained)
async def delete_artifacts(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    """spec.storage.retainOnDelete: false: run the cleanup Job before the ModelDeployment goes.

    Only such ModelDeployments get kopf's finalizer; the others are deleted at once and keep their
    artifacts. A spec that does not parse any more cannot name its folder: nothing is deleted then.
    """
    from trtforge_runtime.errors import ManifestError
    from trtforge_runtime.spec.load import parse_spec

    from trtforge_operator.plan import Owner, Plan
    from trtforge_operator.reconcilers import cleanup_job

    meta = body.get("metadata", {})
    try:
        spec = parse_spec(dict(body.get("spec") or {}))
        owner = Owner(str(meta["name"]), str(meta["namespace"]), str(meta["uid"]))
        plan = Plan.build(owner, spec, memo["trtforge_settings"])
    except (ManifestError, ValueError) as exc:
        logger.warning("artifacts of %s are kept: %s", meta.get("name"), exc)
        return
    if not cleanup_job.supported(plan):
        logger.info("artifacts in %s are kept: the operator deletes only pvc:// artifacts", plan.store.scheme)
        return
    job = cleanup_job.cleanup_job(plan)
    kube: Kube = memo["trtforge_kube"]
    await kube.create(job)  # 409: created by an earlier attempt
    logger.info("artifact cleanup Job %s removes %s", job["metadata"]["name"], cleanup_job.folder(plan))


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_FILTER)
async def job_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).trigger(_owner_key(body))


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_FILTER)
async def deployment_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).trigger(_owner_key(body))
