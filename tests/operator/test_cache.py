"""Reconciles read from the watch caches and write to the API server (`cache.CachedKube`), and stay
correct when the cache is behind: a create that meets 409 AlreadyExists re-reads once and goes on, a
patch computed from a stale read meets 409 Conflict and is requeued, a child deleted from outside is
recreated from its watch event. Against the emulator, the test feeding the store as the watches would."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter

import pytest
from kube_emulator.helpers import Kube
from test_integration import CONVERT_OK, MD, NS, TRAIN_OK, digits
from trtforge_operator import labels
from trtforge_operator.apply import Action, ensure
from trtforge_operator.apply import Kube as ApiKube
from trtforge_operator.cache import STORED, CachedKube, ObjectStore, parse_selector
from trtforge_operator.controller import Controller, resync_due, resync_phase
from trtforge_operator.errors import KubeApiError
from trtforge_operator.pipeline import Pipeline, Result
from trtforge_operator.plan import Owner, Plan
from trtforge_operator.reconcilers import service
from trtforge_operator.settings import OperatorSettings
from trtforge_runtime.spec.load import parse_spec

SERVICE = ("v1", "Service")


def relist(store: ObjectStore, cluster: Kube) -> None:
    """What the watches deliver once caught up: every object of every stored kind."""
    for kind in STORED:
        store.table(*kind).clear()
        for obj in cluster.list(*kind, NS):
            store.observe(None, obj)


class Operator:
    """A pipeline reading through a CachedKube, as `lifecycle.OperatorRuntime` wires it."""

    def __init__(self, cluster: Kube) -> None:
        self.live = ApiKube(cluster.client())
        self.store = ObjectStore()
        self.kube = CachedKube(self.live, self.store)
        settings = OperatorSettings()
        self.pipeline = Pipeline(self.kube, settings)
        self.pipeline.autoscaler_children.watch(settings.autoscaler_modes)  # (none of them is there)

    async def reconcile(self) -> tuple[Result, int]:
        before = self.live.requests
        result = await self.pipeline.reconcile(NS, "digits")
        return result, self.live.requests - before


async def ready(cluster: Kube, op: Operator) -> None:
    """The digits example driven to Ready, the store caught up after each step."""
    cluster.apply(digits())
    for _ in range(12):
        relist(op.store, cluster)
        await op.reconcile()
        for job in cluster.list("batch/v1", "Job", NS):
            if not (job.get("status") or {}).get("conditions"):
                stage = job["metadata"]["labels"][labels.STAGE]
                summary = TRAIN_OK if stage == "train" else CONVERT_OK
                cluster.complete_job(NS, job["metadata"]["name"], termination_message=summary)
        if cluster.get("apps/v1", "Deployment", "digits-predictor", NS) is not None:
            cluster.make_deployment_ready(NS, "digits-predictor")
        if (cluster.get(*MD, "digits", NS).get("status") or {}).get("phase") == "Ready":
            relist(op.store, cluster)
            return
    raise AssertionError(f"not Ready: {cluster.get(*MD, 'digits', NS).get('status')}")


@pytest.mark.asyncio
async def test_a_reconcile_of_a_ready_object_makes_no_request(cluster: Kube) -> None:
    op = Operator(cluster)
    await ready(cluster, op)
    result, requests = await op.reconcile()
    assert (result.phase, result.status_patch, requests) == ("Ready", None, 0)


@pytest.mark.asyncio
async def test_a_child_deleted_outside_is_recreated_from_its_watch_event(cluster: Kube) -> None:
    op = Operator(cluster)
    await ready(cluster, op)
    svc = cluster.get(*SERVICE, "digits", NS)
    cluster.delete(*SERVICE, "digits", NS)
    op.store.observe("DELETED", svc)  # the watch event (which also triggers the owner's reconcile)
    result, requests = await op.reconcile()
    assert result.phase == "Ready"
    assert requests == 1  # the create, nothing read
    again = cluster.get(*SERVICE, "digits", NS)
    assert again is not None and again["metadata"]["uid"] != svc["metadata"]["uid"]
    # the answer of the create is in the store at once: the next reconcile creates nothing
    assert (await op.reconcile())[1] == 0


def service_plan(cluster: Kube) -> Plan:
    md = cluster.apply(digits())
    owner = Owner("digits", NS, md["metadata"]["uid"], int(md["metadata"]["generation"]))
    return Plan.build(owner, parse_spec(md["spec"]), OperatorSettings())


@pytest.mark.asyncio
async def test_a_create_the_cache_did_not_see_coming_rereads_once_and_goes_on(cluster: Kube) -> None:
    plan = service_plan(cluster)
    live = ApiKube(cluster.client())
    await ensure(live, service.service(plan), owner_uid=plan.owner.uid)  # made, but not yet in the store
    kube = CachedKube(live, ObjectStore())
    before = live.requests
    existing = await kube.get(*SERVICE, NS, "digits")
    action, obj = await ensure(kube, service.service(plan), owner_uid=plan.owner.uid, existing=existing)
    assert existing is None and action is Action.UNCHANGED
    assert live.requests - before == 2  # the POST that met 409, one GET
    assert len(cluster.list(*SERVICE, NS)) == 1
    assert kube.store.get(*SERVICE, NS, "digits") == obj  # the re-read is kept


@pytest.mark.asyncio
async def test_a_patch_from_a_stale_read_meets_a_conflict(cluster: Kube) -> None:
    plan = service_plan(cluster)
    live = ApiKube(cluster.client())
    _, stale = await ensure(live, service.service(plan), owner_uid=plan.owner.uid)
    cluster.patch(*SERVICE, "digits", {"metadata": {"labels": {"someone": "else"}}}, NS)  # newer
    kube = CachedKube(live, ObjectStore())
    kube.store.observe(None, stale)  # the watch has not delivered that change yet
    desired = service.service(plan)
    desired["spec"]["ports"][0]["name"] = "changed"
    with pytest.raises(KubeApiError) as err:
        await ensure(kube, desired, owner_uid=plan.owner.uid, existing=await kube.get(*SERVICE, NS, "digits"))
    assert err.value.status == 409
    assert cluster.get(*SERVICE, "digits", NS)["spec"]["ports"][0]["name"] != "changed"


@pytest.mark.asyncio
async def test_a_status_computed_from_a_stale_object_is_not_written(cluster: Kube) -> None:
    op = Operator(cluster)
    await ready(cluster, op)
    stale = copy.deepcopy(op.store.get(*MD, NS, "digits"))
    assert stale is not None
    # someone else's write the watch has not delivered; the cached object says something else
    cluster.patch(*MD, "digits", {"metadata": {"annotations": {"someone": "else"}}}, NS)
    stale["status"]["message"] = "outdated"
    op.store.observe("MODIFIED", stale)
    with pytest.raises(KubeApiError) as err:
        await op.reconcile()
    assert err.value.status == 409
    assert cluster.get(*MD, "digits", NS)["status"]["message"] != "outdated"
    relist(op.store, cluster)  # the watch catches up: the requeued reconcile has nothing to do
    assert (await op.reconcile())[0].status_patch is None


def test_the_store_never_brings_back_a_deleted_object() -> None:
    store = ObjectStore()
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": NS, "name": "a", "uid": "u1"}}
    store.observe(None, obj)
    store.observe("DELETED", obj)
    store.remember(obj)  # the late answer of a write made before the deletion
    assert store.get(*SERVICE, NS, "a") is None
    store.remember({**obj, "metadata": {**obj["metadata"], "uid": "u2"}})  # a new one of that name
    assert store.get(*SERVICE, NS, "a") is not None
    store.observe(None, {"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": NS, "name": "s"}})
    assert not store.stores("v1", "Secret")  # not a watched kind: always read from the API


def test_selectors_the_store_answers() -> None:
    assert parse_selector("a=b,c==d") == {"a": "b", "c": "d"}
    assert parse_selector(None) == {}
    assert parse_selector("a!=b") is None and parse_selector("a in (b)") is None
    assert parse_selector("a") is None  # existence: the API answers


# ---------------------------------------------------------------------- the queue


class ConflictingPipeline:
    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.calls: list[float] = []

    async def reconcile(self, namespace: str, name: str) -> Result:
        self.calls.append(asyncio.get_running_loop().time())
        if self.conflicts:
            self.conflicts -= 1
            raise KubeApiError(409, "PATCH ...: the object has been modified")
        return Result()


@pytest.mark.asyncio
async def test_a_conflict_is_requeued_soon_and_not_counted_as_an_error() -> None:
    p = ConflictingPipeline(conflicts=2)
    c = Controller(p, concurrency=4, resync_seconds=3600)  # type: ignore[arg-type]
    c.trigger((NS, "digits"))
    await asyncio.sleep(0.6)  # requeued after 0.1 s and 0.2 s (an error would wait 0.5 s, then 1 s)
    await c.idle()
    assert len(p.calls) == 3
    assert (c.stats.conflicts, c.stats.errors, c.stats.reconciles) == (2, 0, 1)
    assert 0.08 <= p.calls[1] - p.calls[0] < 0.3
    await c.stop()


def test_the_resync_spreads_the_objects_over_the_period() -> None:
    keys = [(NS, f"md-{i}") for i in range(110)]
    period, tick = 120.0, 1.0
    per_tick = []
    seen: Counter[tuple[str, str]] = Counter()
    for n in range(int(2 * period / tick)):  # two periods of one-second ticks
        due = resync_due(keys, period, n * tick, (n + 1) * tick)
        per_tick.append(len(due))
        seen.update(due)
    assert set(seen.values()) == {2}  # every object once per period
    assert max(per_tick) <= 6, per_tick  # not 110 at once
    assert sum(1 for n in per_tick[: int(period)] if n) >= 60  # spread over most of the period
    assert all(0 <= resync_phase(k, period) < period for k in keys)


@pytest.mark.asyncio
async def test_the_resync_loop_triggers_each_object_at_its_own_time() -> None:
    class Recording:
        def __init__(self) -> None:
            self.at: dict[tuple[str, str], list[float]] = {}

        async def reconcile(self, namespace: str, name: str) -> Result:
            self.at.setdefault((namespace, name), []).append(asyncio.get_running_loop().time())
            return Result()

    p = Recording()
    c = Controller(p, concurrency=20, resync_seconds=2.0, active=False)  # type: ignore[arg-type]
    keys = [(NS, f"md-{i}") for i in range(20)]
    for key in keys:
        c.trigger(key)  # known (a standby remembers), nothing reconciled
    c.active = True
    c.start()
    await asyncio.sleep(2.3)
    await c.stop()
    assert set(p.at) == set(keys)  # each one resynced within the period
    first = sorted(min(v) for v in p.at.values())
    assert first[-1] - first[0] >= 1.0  # over the period, not in one burst


@pytest.mark.asyncio
async def test_a_reconcile_of_a_training_object_reads_its_pods_from_the_watch(cluster: Kube) -> None:
    """The resync of a Training object (is its pod able to start?) costs no request either."""
    op = Operator(cluster)
    cluster.apply(digits())
    relist(op.store, cluster)
    await op.reconcile()  # creates the training Job
    (job,) = cluster.list("batch/v1", "Job", NS)
    cluster.start_job(NS, job["metadata"]["name"])  # its pod runs
    relist(op.store, cluster)
    result, _ = await op.reconcile()
    assert result.phase == "Training"
    relist(op.store, cluster)
    result, requests = await op.reconcile()
    assert (result.phase, result.status_patch, requests) == ("Training", None, 0)
