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
CHILD_FILTER: dict[str, Any] = {labels.MODELDEPLOYMENT: kopf.PRESENT, "app.kubernetes.io/managed-by": labels.MANAGED_BY}


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    op = OperatorSettings.from_env()
    settings.batching.worker_limit = op.worker_limit
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


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_FILTER)
async def job_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).trigger(_owner_key(body))


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_FILTER)
async def deployment_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).trigger(_owner_key(body))
