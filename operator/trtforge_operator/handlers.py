"""kopf handlers: thin adapters from watch events to the reconcile queue.

- ModelDeployment events (added, modified, listed at start-up) trigger its reconcile; the event of the
  operator's own status write is skipped, deletion forgets it (children go with owner references).
- Events of every owned kind (Job, Deployment, Service, ConfigMap, PodDisruptionBudget, and the
  autoscaling modes' HorizontalPodAutoscaler / KEDA ScaledObject where served), filtered by the
  `trtforge.dev/modeldeployment` label, trigger their owner's reconcile, so a Job completion moves the
  pipeline on, and a deleted or edited child is repaired, within a second. Each event first updates
  the object store the reconciles read from (`cache.ObjectStore`: reads from the watch caches, writes
  to the API server), so the reconcile it triggers sees it.
- A pod of a child (a stage's Job, the serving Deployment) whose container cannot start (a missing
  Secret or ConfigMap: CreateContainerConfigError) triggers its owner, so that the status says so at
  once: neither the Job's nor the Deployment's status changes when the kubelet gives that reason; and
  so does its next event once it can start (the reconcile reads the pods from the watch).
- A PersistentVolumeClaim that appears (created, or first listed) triggers the ModelDeployments of its
  namespace whose pods mount it (by claim name: the store's pvc://CLAIM and pvc:// inputs), so one that
  Failed because the claim was missing goes on within a second of its creation, not at the resync.

Watch-event handlers are used instead of kopf's create/update/delete handlers and daemons on purpose:
those persist their progress in annotations and put kopf's finalizer on every object; here every
trigger path goes through one coalescing queue (`Controller`) with its own retry/backoff, and only the
leader's queue acts (`lifecycle.OperatorRuntime`). The only finalizer is the operator's own, on objects
with `spec.storage.retainOnDelete: false` (see `pipeline`).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from trtforge_runtime.spec.model import GROUP, PLURAL, VERSION

from trtforge_operator import labels
from trtforge_operator.apply import Kube
from trtforge_operator.lifecycle import OperatorRuntime
from trtforge_operator.settings import OperatorSettings
from trtforge_operator.status import blocked_pod

log = logging.getLogger(__name__)
MEMO_KEY = "trtforge_runtime"
CHILD_FILTER: dict[str, Any] = {
    labels.MODELDEPLOYMENT: kopf.PRESENT,
    "app.kubernetes.io/managed-by": labels.MANAGED_BY,
}
# (group, version, plural) of the children every operator watches; the autoscaling modes' kinds only
# where served (TRTFORGE_AUTOSCALER_MODES), see `_mode_enabled`
CHILD_KINDS = (
    ("batch", "v1", "jobs"),
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("policy", "v1", "poddisruptionbudgets"),
)


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
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    runtime = OperatorRuntime(op, Kube.from_environment())
    memo[MEMO_KEY] = runtime
    await runtime.start()
    log.info(
        "trtforge operator: namespaces=%s storage=%s leader election=%s",
        ",".join(op.watch_namespaces) or "<all>",
        op.storage_uri,
        f"Lease {op.lease_namespace}/{op.lease_name} as {op.pod_name}" if op.leader_election else "off",
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime: OperatorRuntime | None = memo.get(MEMO_KEY)
    if runtime is not None:
        await runtime.stop()


def _runtime(memo: kopf.Memo) -> OperatorRuntime:
    runtime: OperatorRuntime = memo[MEMO_KEY]
    return runtime


def _key(meta: Any) -> tuple[str, str]:
    return str(meta.get("namespace")), str(meta.get("name"))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def modeldeployment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = _runtime(memo)
    meta = body.get("metadata", {})
    key = _key(meta)
    runtime.cache.store.observe(type, body)  # (its table is cache.modeldeployments)
    if type == "DELETED":
        runtime.controller.forget(key)
        return
    if runtime.controller.is_own_write(key, meta.get("resourceVersion")):
        return
    runtime.controller.trigger(key)


@kopf.on.event("", "v1", "persistentvolumeclaims", id="persistentvolumeclaims-event")
async def claim_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = _runtime(memo)
    runtime.cache.store.observe(type, body)  # the reconciles' reads of claims
    if type not in ("ADDED", None):  # None: listed when the watch (re)starts
        return  # changes of an existing claim (binding, resizing) change nothing the operator decides
    namespace, claim = _key(body.get("metadata", {}))
    for key in runtime.cache.claim_users(namespace, claim, runtime.settings):
        runtime.controller.trigger(key)


@kopf.on.event("", "v1", "pods", labels=CHILD_FILTER, id="pods-event")
async def pod_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = _runtime(memo)
    runtime.cache.observe_pod(type, body)  # the serving pods the built-in autoscaler scrapes
    namespace, name = _key(body.get("metadata", {}))
    before = runtime.cache.store.get("v1", "Pod", namespace, name)
    runtime.cache.store.observe(type, body)  # whether a running stage's or a rollout's pod can start
    blocked_now = type != "DELETED" and blocked_pod([dict(body)]) is not None
    if blocked_now or (before is not None and blocked_pod([before]) is not None):  # blocked, or no more
        runtime.controller.trigger(_owner_key(body))


def _owner_key(body: kopf.Body) -> tuple[str, str]:
    meta = body.get("metadata", {})
    return str(meta.get("namespace")), str((meta.get("labels") or {}).get(labels.MODELDEPLOYMENT))


async def child_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = _runtime(memo)
    runtime.cache.store.observe(type, body)  # what the owner's reconcile reads (before it is triggered)
    runtime.controller.trigger(_owner_key(body))


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_FILTER)
async def deployment_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = _runtime(memo)
    key = _owner_key(body)
    runtime.cache.store.observe(type, body)
    if type == "DELETED":
        runtime.cache.deployments.pop(key, None)
    else:
        runtime.cache.deployments[key] = dict(body)
    runtime.controller.trigger(key)


for _group, _version, _plural in CHILD_KINDS:
    if _plural != "deployments":  # (its handler above also feeds the autoscaler's cache)
        kopf.on.event(_group, _version, _plural, labels=CHILD_FILTER, id=f"{_plural}-event")(child_event)

AUTOSCALER_CHILD_KINDS = {
    "hpa": ("autoscaling", "v2", "horizontalpodautoscalers"),
    "keda": ("keda.sh", "v1alpha1", "scaledobjects"),
}


def register_autoscaler_watches(
    settings: OperatorSettings, registry: kopf.OperatorRegistry | None = None
) -> None:
    """Watch the hpa / keda children only where that mode is served (their RBAC and, for KEDA, a CRD
    that kopf starts watching once it appears). `trtforge operator` calls this before kopf starts, with
    the settings it validated (settings are never read at import time)."""
    if not settings.autoscaler_enabled:
        return
    registry = registry or kopf.get_default_registry()
    modes = tuple(settings.autoscaler_modes)
    for mode in modes:
        group, version, plural = AUTOSCALER_CHILD_KINDS[mode]
        kopf.on.event(group, version, plural, labels=CHILD_FILTER, id=f"{plural}-event", registry=registry)(
            autoscaler_child_event
        )

    async def watched(memo: kopf.Memo, **_: Any) -> None:  # after `startup` (registered after it)
        _runtime(memo).pipeline.autoscaler_children.watch(modes)

    kopf.on.startup(id="autoscaler-children-watched", registry=registry)(watched)


async def autoscaler_child_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """An HPA / ScaledObject event: kept in the reconcile's cache (absent children cost no GET)."""
    runtime = _runtime(memo)
    runtime.pipeline.autoscaler_children.observe(type, body)
    runtime.controller.trigger(_owner_key(body))
