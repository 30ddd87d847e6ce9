"""The reconcile queue: coalesced, serialized per ModelDeployment, bounded, retried with backoff.

Any number of triggers for one ModelDeployment (its own watch events, its Jobs' and Deployment's
events, the periodic resync) collapse into at most one running reconcile plus one pending: a Job's
completion moves the pipeline on within one API round trip, and a burst of events costs one reconcile.
Failures (API errors, bugs) are logged and retried with exponential backoff (0.5 s .. 60 s), never in
a hot loop; a 409 Conflict (a write computed from a stale cached read) is requeued after 0.1 s, doubling.
The periodic resync is a safety net for missed events (e.g. a Secret created later); each object comes
at its own phase of the period, so a hundred objects do not all reconcile at once.

Leadership gates the workers: while inactive (a standby replica), triggers only mark their key dirty, so
the queue knows every object kopf has seen; `activate()` (leadership gained) then reconciles every known
key (a full resync: nothing missed while standing by), and `deactivate()` (leadership lost) cancels
running and pending reconciles at once. A reconcile is idempotent, so one cut short is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from trtforge_operator.errors import KubeApiError
from trtforge_operator.pipeline import Pipeline, Result

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)
MAX_BACKOFF = 60.0
CONFLICT_BACKOFF = 0.1  # first requeue after a 409 Conflict
RESYNC_TICK = 1.0  # the resync loop's wake-up interval (at most)


def resync_phase(key: Key, period: float) -> float:
    """Where in each resync period `key` is due, in [0, period): spread evenly over the keys by a hash
    that is the same in every process (not Python's salted hash)."""
    return zlib.crc32(f"{key[0]}/{key[1]}".encode()) / 2**32 * period


def resync_due(keys: Iterable[Key], period: float, last: float, now: float) -> list[Key]:
    """The keys whose resync point (phase + n * period, seconds since the loop started) falls in
    (last, now]: each key once per period, the keys spread over it instead of all at once."""
    due = []
    for key in keys:
        phase = resync_phase(key, period)
        if math.floor((now - phase) / period) > math.floor((last - phase) / period):
            due.append(key)
    return due


@dataclass
class _KeyState:
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    failures: int = 0
    retry: asyncio.TimerHandle | None = None
    own_resource_version: str | None = None
    # ModelDeployment events that came while a reconcile ran: the watch may deliver the event of that
    # reconcile's own status write before the write's answer is back, so they are judged when it ends
    unsettled: list[str] = field(default_factory=list)


@dataclass
class Stats:
    reconciles: int = 0
    errors: int = 0
    conflicts: int = 0  # reconciles cut short by a 409 Conflict (a stale read), requeued
    skipped_own_writes: int = 0
    last: dict[Key, Result] = field(default_factory=dict)


class Controller:
    def __init__(
        self, pipeline: Pipeline, concurrency: int, resync_seconds: float, *, active: bool = True
    ) -> None:
        self.pipeline = pipeline
        self.active = active
        self.resync_seconds = resync_seconds
        self._sem = asyncio.Semaphore(concurrency)
        self._states: dict[Key, _KeyState] = {}
        self._resync_task: asyncio.Task[None] | None = None
        self.stats = Stats()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._resync_task is None:
            self._resync_task = asyncio.get_running_loop().create_task(self._resync_loop())

    async def stop(self) -> None:
        tasks = [s.task for s in self._states.values() if s.task is not None]
        if self._resync_task is not None:
            tasks.append(self._resync_task)
        for s in self._states.values():
            if s.retry is not None:
                s.retry.cancel()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._resync_task = None

    def activate(self) -> None:
        """Leadership gained: reconcile every known ModelDeployment (a full resync)."""
        if self.active:
            return
        self.active = True
        for key in self.keys:
            self.trigger(key)

    def deactivate(self) -> None:
        """Leadership lost: stop acting at once (running reconciles are cancelled, keys stay known)."""
        self.active = False
        for state in self._states.values():
            state.dirty = True
            state.failures = 0
            if state.retry is not None:
                state.retry.cancel()
                state.retry = None
            if state.task is not None and not state.task.done():
                state.task.cancel()
            state.task = None

    # ------------------------------------------------------------------ triggers
    def trigger(self, key: Key) -> None:
        state = self._states.setdefault(key, _KeyState())
        state.dirty = True
        if state.retry is not None:
            state.retry.cancel()
            state.retry = None
        if not self.active:
            return
        if state.task is None or state.task.done():
            state.task = asyncio.get_running_loop().create_task(self._run(key, state))

    def is_own_write(self, key: Key, resource_version: str | None) -> bool:
        """True when the ModelDeployment's event needs no trigger: the watch event of our own last status
        write (nothing new to react to), or any event while a reconcile runs, which is settled when it
        ends (reconciled again unless it was the event of that reconcile's own status write)."""
        state = self._states.get(key)
        if state is None or not resource_version or not self.active:
            return False
        if state.own_resource_version == resource_version:
            self.stats.skipped_own_writes += 1
            return True
        if state.task is not None and not state.task.done() and not state.dirty:
            state.unsettled.append(resource_version)
            return True
        return False

    def forget(self, key: Key) -> None:
        state = self._states.pop(key, None)
        if state is not None and state.retry is not None:
            state.retry.cancel()
        self.stats.last.pop(key, None)

    @property
    def keys(self) -> list[Key]:
        return list(self._states)

    async def idle(self) -> None:
        """Wait until no reconcile is running or pending (tests, benchmarks)."""
        while any(s.task is not None and not s.task.done() for s in self._states.values()):
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ work
    async def _run(self, key: Key, state: _KeyState) -> None:
        while state.dirty and self.active:
            state.dirty = False
            try:
                async with self._sem:
                    result = await self.pipeline.reconcile(*key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.failures += 1
                state.unsettled.clear()  # the retry reconciles anyway
                if isinstance(exc, KubeApiError) and exc.status == 409:
                    # a write computed from a stale read (the watch cache behind the API server): read
                    # again shortly; the watch event of the newer object usually triggers it first
                    self.stats.conflicts += 1
                    delay = min(MAX_BACKOFF, CONFLICT_BACKOFF * 2 ** (state.failures - 1))
                    log.debug("reconcile of %s/%s: conflict, again in %.2fs: %s", *key, delay, exc)
                else:
                    self.stats.errors += 1
                    delay = min(MAX_BACKOFF, 0.5 * 2 ** (state.failures - 1))
                    log.warning("reconcile of %s/%s failed (retry in %.1fs): %s", *key, delay, exc)
                    log.debug("reconcile failure", exc_info=True)
                state.retry = asyncio.get_running_loop().call_later(delay, self.trigger, key)
                return
            self.stats.reconciles += 1
            state.failures = 0
            if not result.found:
                self.forget(key)
                return
            self.stats.last[key] = result
            if result.resource_version:
                state.own_resource_version = result.resource_version
            self._settle(state)

    def _settle(self, state: _KeyState) -> None:
        """Events that came during the reconcile: anything but its own status write asks for another."""
        own = [v for v in state.unsettled if v == state.own_resource_version]
        self.stats.skipped_own_writes += len(own)
        if len(own) < len(state.unsettled):
            state.dirty = True
        state.unsettled.clear()

    async def _resync_loop(self) -> None:
        """Every known key once per resync period, each at its own phase (`resync_due`): 110 objects
        are reconciled about one a second over 120 s, not in one burst."""
        loop = asyncio.get_running_loop()
        started = last = loop.time()
        tick = min(RESYNC_TICK, self.resync_seconds / 10)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            due = resync_due(self.keys, self.resync_seconds, last - started, now - started)
            last = now
            if self.active:
                for key in due:
                    self.trigger(key)
