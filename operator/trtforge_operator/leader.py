"""Leader election on a `coordination.k8s.io/v1` Lease, with client-go's leaderelection semantics.

Every operator replica runs a `LeaderElector`; exactly one holds the Lease and acts (reconciles, runs
the autoscaler), the others watch (kopf keeps their caches warm) and stand by:

- acquire: the Lease is free when it does not exist, names no holder, or its holder has not renewed it
  within `leaseDurationSeconds` *as observed by this replica's own clock* (the time at which this replica
  last saw the record change, as client-go does: no cross-node clock comparison); a standby tries every
  `retry_period` (with client-go's jitter factor 1.2), and wakes just after the observed expiry when
  that comes sooner;
- renew: the leader renews every `retry_period`; when no renewal has succeeded for `renew_deadline` it
  stops acting at once (`on_stopped_leading`) and goes back to trying to acquire;
- optimistic concurrency: every write is a PUT carrying the resourceVersion just read, so two replicas
  racing for a free Lease cannot both win (the loser gets 409 Conflict and retries later);
- release (client-go's ReleaseOnCancel): on graceful shutdown the leader writes an empty holder with
  `leaseDurationSeconds: 1`, so a standby takes over within one retry period instead of a lease duration.

`renew_deadline < lease_duration` gives the margin: the old leader has stopped before anyone else can
consider the Lease expired. Defaults are controller-runtime's: 15 s, 10 s, 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trtforge_operator.apply import Kube
from trtforge_operator.errors import KubeApiError

log = logging.getLogger(__name__)
API_VERSION = "coordination.k8s.io/v1"
KIND = "Lease"
JITTER_FACTOR = 1.2  # client-go's wait.JitterUntil factor for the acquire loop


@dataclass(frozen=True)
class LeaseConfig:
    name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs a non-empty identity")
        if not self.lease_duration > self.renew_deadline > self.retry_period * JITTER_FACTOR:
            raise ValueError(
                "leader election needs lease duration > renew deadline > retry period x 1.2 "
                f"(got {self.lease_duration}, {self.renew_deadline}, {self.retry_period})"
            )


def micro_time(at: datetime | None = None) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_record(lease: dict[str, Any] | None) -> tuple[str, int, int]:
    """(holderIdentity, leaseDurationSeconds, leaseTransitions) of a Lease, empty values when unset."""
    spec = (lease or {}).get("spec") or {}
    return (
        str(spec.get("holderIdentity") or ""),
        int(spec.get("leaseDurationSeconds") or 0),
        int(spec.get("leaseTransitions") or 0),
    )


class LeaderElector:
    """Campaigns for one Lease; calls `on_started_leading` / `on_stopped_leading` on each change."""

    def __init__(
        self,
        kube: Kube,
        config: LeaseConfig,
        *,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.config = config
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.clock = clock
        self.is_leader = False
        self.holder = ""  # the holder as last observed (for the status endpoint)
        self.transitions = 0
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0  # our clock when that record last changed
        self._expires_at: float | None = None  # when the observed record expires, on our clock
        self._last_renew = 0.0
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self, release: bool = True) -> None:
        """Stop campaigning; a leader stops acting first, then releases the Lease (ReleaseOnCancel)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        was_leader = self.is_leader
        self._lose("shutting down")
        if release and was_leader:
            try:  # an unreachable API server must not eat the pod's termination grace period
                await asyncio.wait_for(self.release(), timeout=self.config.renew_deadline)
            except TimeoutError:
                log.warning("leader election: Lease %s not released (no answer); it expires", self._where)

    async def run(self) -> None:
        while True:
            await self._acquire()
            await self._renew()

    async def _acquire(self) -> None:
        while True:
            try:  # a request hanging on a dead connection must not hold the campaign up
                attempt = self.try_acquire_or_renew()
                acquired = await asyncio.wait_for(attempt, timeout=self.config.renew_deadline)
            except TimeoutError:
                acquired = False
            if acquired:
                self._gain()
                return
            await asyncio.sleep(self._acquire_wait())

    def _acquire_wait(self) -> float:
        """client-go's jittered retry period, but no later than just after the observed expiry: a
        standby takes a crashed leader's Lease within moments of it expiring, not up to 2.2 retry
        periods later."""
        jittered = self.config.retry_period * (1 + random.random() * JITTER_FACTOR)
        if not self.holder or self._expires_at is None:
            return jittered
        return max(0.05, min(jittered, self._expires_at - self.clock() + 0.05))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.config.retry_period)
            try:
                ok = await asyncio.wait_for(
                    self.try_acquire_or_renew(), timeout=max(0.1, self._renew_budget())
                )
            except TimeoutError:
                ok = False
            if ok:
                continue
            if self.holder and self.holder != self.config.identity:
                self._lose(f"Lease {self._where} is now held by {self.holder}")
                return
            if self.clock() - self._last_renew >= self.config.renew_deadline:
                self._lose(f"no renewal of Lease {self._where} for {self.config.renew_deadline:g} s")
                return

    def _renew_budget(self) -> float:
        return self.config.renew_deadline - (self.clock() - self._last_renew)

    def _gain(self) -> None:
        if not self.is_leader:
            self.is_leader = True
            log.info("leader election: %s became the leader (Lease %s)", self.config.identity, self._where)
            self.on_started_leading()

    def _lose(self, why: str) -> None:
        if self.is_leader:
            self.is_leader = False
            log.warning("leader election: %s stopped leading: %s", self.config.identity, why)
            self.on_stopped_leading()

    @property
    def _where(self) -> str:
        return f"{self.config.namespace}/{self.config.name}"

    # ------------------------------------------------------------------ one round
    async def try_acquire_or_renew(self) -> bool:
        """One client-go tryAcquireOrRenew: True when this replica holds the Lease afterwards."""
        cfg = self.config
        try:
            lease = await self.kube.get(API_VERSION, KIND, cfg.namespace, cfg.name)
            now = micro_time()
            if lease is None:
                status, _ = await self.kube.create(self._manifest(now, now, 0))
                return self._written(status)
            holder, duration, transitions = lease_record(lease)
            renew_time = str((lease.get("spec") or {}).get("renewTime") or "")
            if self._observed != (holder, renew_time):
                self._observed = (holder, renew_time)
                self._observed_at = self.clock()
            self.holder, self.transitions = holder, transitions
            self._expires_at = self._observed_at + duration
            if holder and holder != cfg.identity and self._expires_at > self.clock():
                return False  # held by someone else, not expired
            if holder == cfg.identity:
                acquire_time = str((lease.get("spec") or {}).get("acquireTime") or now)
            else:
                acquire_time, transitions = now, transitions + 1
            body = self._manifest(acquire_time, now, transitions)
            body["metadata"] = {**lease["metadata"], **body["metadata"]}
            status, _ = await self.kube.request(
                "PUT", lease_path(cfg.namespace, cfg.name), body=body, ok=(409,)
            )
            return self._written(status)
        except KubeApiError as exc:
            log.warning("leader election: Lease %s: %s", self._where, exc)
            return False

    def _written(self, status: int) -> bool:
        if status == 409:  # someone else wrote first: not ours this round
            return False
        self.holder = self.config.identity
        self._last_renew = self.clock()
        return True

    def _manifest(self, acquire_time: str, renew_time: str, transitions: int) -> dict[str, Any]:
        cfg = self.config
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": {
                "holderIdentity": cfg.identity,
                "leaseDurationSeconds": max(1, round(cfg.lease_duration)),
                "acquireTime": acquire_time,
                "renewTime": renew_time,
                "leaseTransitions": transitions,
            },
        }

    async def release(self) -> bool:
        """Give the Lease up if this replica holds it (empty holder, 1 s duration, as client-go)."""
        cfg = self.config
        try:
            lease = await self.kube.get(API_VERSION, KIND, cfg.namespace, cfg.name)
            if lease is None or lease_record(lease)[0] != cfg.identity:
                return False
            spec = dict(lease.get("spec") or {})
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time())
            body = {**lease, "spec": spec}
            status, _ = await self.kube.request(
                "PUT", lease_path(cfg.namespace, cfg.name), body=body, ok=(409,)
            )
        except KubeApiError as exc:
            log.warning("leader election: cannot release Lease %s: %s", self._where, exc)
            return False
        if status != 409:
            self.holder = ""
            log.info("leader election: %s released Lease %s", cfg.identity, self._where)
        return status != 409

    def describe(self) -> dict[str, Any]:
        """What the status endpoint reports."""
        return {
            "role": "leader" if self.is_leader else "standby",
            "identity": self.config.identity,
            "holder": self.holder,
            "lease": self._where,
        }


def lease_path(namespace: str, name: str) -> str:
    return f"/apis/{API_VERSION}/namespaces/{namespace}/leases/{name}"
