"""Leader election on a coordination.k8s.io/v1 Lease against the test API server, on an injected clock."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kube_emulator.helpers import Kube as Cluster
from trtforge_operator.apply import Kube
from trtforge_operator.leader import LeaderElector, LeaseConfig

LEASE = ("coordination.k8s.io/v1", "Lease")


class Replica:
    def __init__(self, cluster: Cluster, identity: str, clock: list[float]) -> None:
        self.kube = Kube(cluster.client())
        self.events: list[str] = []
        self.elector = LeaderElector(
            self.kube,
            LeaseConfig(name="trtforge", namespace="default", identity=identity),
            on_started_leading=lambda: self.events.append("started"),
            on_stopped_leading=lambda: self.events.append("stopped"),
            clock=lambda: clock[0],
        )


def lease(cluster: Cluster) -> dict[str, Any]:
    obj = cluster.get(*LEASE, "trtforge", "default")
    assert obj is not None
    return dict(obj["spec"])


@pytest.mark.asyncio
async def test_one_holder_expiry_takeover_and_release(kube: Cluster) -> None:
    clock = [100.0]
    a, b = Replica(kube, "pod-a", clock), Replica(kube, "pod-b", clock)
    assert await a.elector.try_acquire_or_renew()  # creates the Lease
    spec = lease(kube)
    assert spec["holderIdentity"] == "pod-a" and spec["leaseDurationSeconds"] == 15
    assert spec["acquireTime"].endswith("Z") and spec["leaseTransitions"] == 0
    assert not await b.elector.try_acquire_or_renew()  # held, not expired
    clock[0] += 10
    assert await a.elector.try_acquire_or_renew()  # renewal
    assert lease(kube)["acquireTime"] == spec["acquireTime"]
    assert not await b.elector.try_acquire_or_renew()  # b (polling) sees the renewal now
    clock[0] += 14
    assert not await b.elector.try_acquire_or_renew()  # b saw the renewal 14 s ago (its own clock)
    clock[0] += 2  # a stopped renewing 16 s ago: expired
    assert await b.elector.try_acquire_or_renew()
    spec = lease(kube)
    assert spec["holderIdentity"] == "pod-b" and spec["leaseTransitions"] == 1
    assert not await a.elector.release()  # not a's any more: nothing written
    b.elector.is_leader = True
    assert await b.elector.release()
    spec = lease(kube)
    assert spec["holderIdentity"] in ("", None) and spec["leaseDurationSeconds"] == 1
    assert await a.elector.try_acquire_or_renew()  # released: free at once


@pytest.mark.asyncio
async def test_a_stale_write_conflicts(kube: Cluster) -> None:
    clock = [0.0]
    a = Replica(kube, "pod-a", clock)
    assert await a.elector.try_acquire_or_renew()
    stale = kube.get(*LEASE, "trtforge", "default")
    assert await a.elector.try_acquire_or_renew()  # moves the resourceVersion on
    stale["spec"]["holderIdentity"] = "pod-b"
    status, _ = await a.kube.request(
        "PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/trtforge", body=stale, ok=(409,)
    )
    assert status == 409  # optimistic concurrency: the loser of a race does not overwrite the winner
    assert lease(kube)["holderIdentity"] == "pod-a"


@pytest.mark.asyncio
async def test_a_leader_that_loses_the_lease_stops_acting_at_once(kube: Cluster) -> None:
    import asyncio

    a = Replica(kube, "pod-a", [0.0])
    a.elector.clock = time.monotonic
    a.elector.config = LeaseConfig(
        name="trtforge",
        namespace="default",
        identity="pod-a",
        lease_duration=3,
        renew_deadline=2,
        retry_period=0.2,
    )
    a.elector.start()
    for _ in range(50):
        if a.events:
            break
        await asyncio.sleep(0.05)
    assert a.events == ["started"] and a.elector.describe()["role"] == "leader"
    # someone else holds the Lease now (e.g. this replica was partitioned away past its lease)
    kube.patch(*LEASE, "trtforge", {"spec": {"holderIdentity": "pod-b"}}, "default")
    for _ in range(40):
        if a.events == ["started", "stopped"]:
            break
        await asyncio.sleep(0.05)
    assert a.events == ["started", "stopped"]  # within a retry period, not after the renew deadline
    assert a.elector.describe()["role"] == "standby" and a.elector.holder == "pod-b"
    await a.elector.stop()
    assert lease(kube)["holderIdentity"] == "pod-b"  # a standby releases nothing


def test_timing_must_leave_a_margin() -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline"):
        LeaseConfig(name="l", namespace="default", identity="x", lease_duration=10, renew_deadline=10)
