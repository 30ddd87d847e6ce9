"""The reconcile queue's semantics, with a pipeline stand-in that records calls (no API involved)."""

from __future__ import annotations

import asyncio

import pytest
from trtforge_operator.controller import Controller
from trtforge_operator.pipeline import Result

pytestmark = pytest.mark.asyncio


class RecordingPipeline:
    def __init__(self, fail_times: int = 0, delay: float = 0.05) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_times = fail_times
        self.delay = delay
        self.running = 0
        self.max_running = 0

    async def reconcile(self, namespace: str, name: str) -> Result:
        self.calls.append((namespace, name))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("API unavailable")
        return Result(resource_version="42")


def controller(pipeline: RecordingPipeline, concurrency: int = 10) -> Controller:
    return Controller(pipeline, concurrency=concurrency, resync_seconds=3600)  # type: ignore[arg-type]


async def test_bursts_of_triggers_coalesce() -> None:
    p = RecordingPipeline()
    c = controller(p)
    for _ in range(20):
        c.trigger(("ml", "a"))
    await asyncio.sleep(0.01)
    for _ in range(20):
        c.trigger(("ml", "a"))  # arrive while the first runs: one more run, not 20
    await c.idle()
    assert p.calls == [("ml", "a"), ("ml", "a")]
    assert p.max_running == 1  # one ModelDeployment is never reconciled concurrently


async def test_own_status_write_is_recognised() -> None:
    p = RecordingPipeline(delay=0)
    c = controller(p)
    c.trigger(("ml", "a"))
    await c.idle()
    assert c.is_own_write(("ml", "a"), "42") and not c.is_own_write(("ml", "a"), "43")


async def test_events_during_a_reconcile_are_settled_when_it_ends() -> None:
    """The watch may deliver the event of a reconcile's own status write before the write's answer is
    back: that one must not cost another reconcile; any other event then must."""

    def handler(c: Controller, version: str) -> None:  # what handlers.modeldeployment_event does
        if not c.is_own_write(("ml", "a"), version):
            c.trigger(("ml", "a"))

    p = RecordingPipeline(delay=0.05)
    c = controller(p)
    c.trigger(("ml", "a"))
    await asyncio.sleep(0.01)
    handler(c, "42")  # the event of its own status write, early
    await c.idle()
    assert p.calls == [("ml", "a")]

    c.trigger(("ml", "a"))
    await asyncio.sleep(0.01)
    handler(c, "42")
    handler(c, "43")  # someone else's change meanwhile: reconciled again
    await c.idle()
    assert p.calls == [("ml", "a")] * 3


async def test_failures_back_off_instead_of_looping() -> None:
    p = RecordingPipeline(fail_times=10, delay=0)
    c = controller(p)
    c.trigger(("ml", "a"))
    await asyncio.sleep(1.2)  # retries after 0.5 s and 1 s: at most 2 attempts in 1.2 s
    assert 2 <= len(p.calls) <= 3
    assert c.stats.errors == len(p.calls)
    await c.stop()


async def test_concurrency_is_bounded_across_deployments() -> None:
    p = RecordingPipeline(delay=0.05)
    c = controller(p, concurrency=3)
    for i in range(12):
        c.trigger(("ml", f"md-{i}"))
    await c.idle()
    assert len(p.calls) == 12 and p.max_running == 3


async def test_forget_drops_state() -> None:
    p = RecordingPipeline(delay=0)
    c = controller(p)
    c.trigger(("ml", "a"))
    await c.idle()
    c.forget(("ml", "a"))
    assert c.keys == []


async def test_a_standby_only_remembers_and_acts_on_everything_once_it_leads() -> None:
    p = RecordingPipeline(delay=0)
    c = Controller(p, concurrency=10, resync_seconds=3600, active=False)  # type: ignore[arg-type]
    for name in ("a", "b", "a"):
        c.trigger(("ml", name))
    await asyncio.sleep(0.05)
    assert p.calls == [] and sorted(c.keys) == [("ml", "a"), ("ml", "b")]
    c.activate()  # leadership gained: a full resync of every known object
    await c.idle()
    assert sorted(p.calls) == [("ml", "a"), ("ml", "b")]


async def test_losing_leadership_cancels_running_and_pending_reconciles() -> None:
    p = RecordingPipeline(delay=0.5, fail_times=1)
    c = controller(p)
    c.trigger(("ml", "slow"))
    await asyncio.sleep(0.05)
    assert p.running == 1
    c.deactivate()
    await asyncio.sleep(0.01)
    assert p.running == 0  # cancelled at once, not finished
    await asyncio.sleep(1.0)  # no retry timer fires either
    assert p.calls == [("ml", "slow")]
    c.trigger(("ml", "slow"))
    await asyncio.sleep(0.05)
    assert p.calls == [("ml", "slow")]
    c.activate()
    await asyncio.sleep(0.05)
    assert len(p.calls) == 2
    await c.stop()
