"""Dynamic batching: merge, split, limits, the idle/busy dispatch policy, overload and failures."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from trtforge_runtime.errors import BackendError, InferenceError, NotReadyError, OverloadedError
from trtforge_runtime.serve.backends.base import Backend, BackendInfo
from trtforge_runtime.serve.batcher import Batcher
from trtforge_runtime.serve.metrics import ServeMetrics
from trtforge_runtime.serve.types import TensorSpec

W = np.arange(64 * 10, dtype=np.float32).reshape(64, 10) / 640


class LinearBackend:
    """A real (numpy) backend: y = x @ W, recording the batch sizes it ran."""

    def __init__(self, max_batch: int = 256, delay: float = 0.0, fail: bool = False) -> None:
        self.max_batch = max_batch
        self.delay = delay
        self.fail = fail
        self.batches: list[int] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()  # set when a batch reaches the backend

    def load(self) -> None:
        pass

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        assert x.shape[0] <= self.max_batch, "batch above the profile max"
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append(x.shape[0])
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("device lost")
        return {"y": x @ W}

    def unload(self) -> None:
        pass

    def metadata(self) -> BackendInfo:
        return BackendInfo(
            "numpy",
            (TensorSpec("x", "FP32", (-1, 64)),),
            (TensorSpec("y", "FP32", (-1, 10)),),
            self.max_batch,
        )


def x_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 64)).astype(np.float32)


def make(backend: LinearBackend, *, use_thread: bool = True, **kw: int) -> Batcher:
    assert isinstance(backend, Backend)
    opts = {"max_batch_size": 64, "max_queue_delay_us": 20_000, "max_queue_size": 100, **kw}
    b = Batcher(backend, model="m", metrics=ServeMetrics(), use_thread=use_thread, **opts)
    b.start()
    return b


@pytest.mark.asyncio
async def test_concurrent_requests_merge_and_split_back() -> None:
    backend = LinearBackend()
    b = make(backend)
    xs = [x_rows(1 + i % 4, i) for i in range(12)]
    outs = await asyncio.gather(*(b.infer({"x": x}) for x in xs))
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(out["y"], x @ W, rtol=1e-5, atol=1e-5)
    assert sum(backend.batches) == sum(len(x) for x in xs)
    assert len(backend.batches) < len(xs), backend.batches  # merged
    await b.stop()


@pytest.mark.asyncio
async def test_batch_never_exceeds_max_batch_size() -> None:
    backend = LinearBackend()
    b = make(backend, max_batch_size=8)
    xs = [x_rows(3, i) for i in range(10)]
    outs = await asyncio.gather(*(b.infer({"x": x}) for x in xs))
    assert max(backend.batches) <= 8
    assert backend.batches[0] == 6  # 3 + 3; a third request would make 9
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(out["y"], x @ W, rtol=1e-5, atol=1e-5)
    await b.stop()


@pytest.mark.asyncio
async def test_profile_max_caps_batches_and_large_requests_are_chunked() -> None:
    backend = LinearBackend(max_batch=16)
    b = make(backend, max_batch_size=64)
    assert b.limit == 16
    x = x_rows(40, 1)
    out = await b.infer({"x": x})
    np.testing.assert_allclose(out["y"], x @ W, rtol=1e-5, atol=1e-5)
    assert sorted(backend.batches) == [8, 16, 16]
    await b.stop()


MODES = pytest.mark.parametrize("use_thread", [False, True], ids=["inline", "thread"])
LONG = 600_000_000  # a 10 min maxQueueDelayMicroseconds: any wait for it shows as a failed time bound
HANG = 60.0  # seconds: far below LONG, far above any loaded machine's pace (figures: benchmarks/)


@MODES
@pytest.mark.asyncio
async def test_lone_request_on_an_idle_backend_does_not_wait_for_the_delay(use_thread: bool) -> None:
    backend = LinearBackend()
    b = make(backend, use_thread=use_thread, max_queue_delay_us=LONG)
    started = time.perf_counter()
    for i in range(5):
        x = x_rows(1, i)
        out = await b.infer({"x": x})
        np.testing.assert_allclose(out["y"], x @ W, rtol=1e-5, atol=1e-5)
    assert time.perf_counter() - started < HANG  # five requests, far below the 10 min delay
    assert backend.batches == [1] * 5
    await b.stop()


@MODES
@pytest.mark.asyncio
async def test_requests_arriving_in_consecutive_loop_iterations_are_collected(use_thread: bool) -> None:
    """While each loop iteration brings another request the batch keeps forming (up to the limit)."""
    for limit, expected in ((64, [10]), (4, [4, 4, 2])):
        backend = LinearBackend()
        b = make(backend, use_thread=use_thread, max_queue_delay_us=LONG, max_batch_size=limit)
        started = time.perf_counter()
        tasks = []
        for i in range(10):  # one new request per event-loop iteration
            tasks.append(asyncio.ensure_future(b.infer({"x": x_rows(1, i)})))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        assert time.perf_counter() - started < HANG
        if use_thread and len(expected) > 1:  # after the first batch, rule 2: what the thread's pace allows
            assert backend.batches[0] == limit and max(backend.batches) <= limit
            assert sum(backend.batches) == 10
        else:
            assert backend.batches == expected
        await b.stop()


@pytest.mark.asyncio
async def test_requests_arriving_while_a_batch_runs_merge_into_the_next_batch() -> None:
    backend = LinearBackend()
    backend.gate = threading.Event()
    b = make(backend, max_queue_delay_us=LONG, max_batch_size=8)
    started = time.perf_counter()
    first = asyncio.ensure_future(b.infer({"x": x_rows(1, 0)}))
    while not backend.entered.is_set():  # the first batch is now running (blocked) in the backend
        await asyncio.sleep(0.001)
    xs = [x_rows(3, i) for i in range(5)]
    waiting = [asyncio.ensure_future(b.infer({"x": x})) for x in xs]
    for _ in range(20):  # many loop iterations: the busy backend must not make anything run
        await asyncio.sleep(0)
    assert backend.batches == [] and b.queued == 5
    backend.gate.set()
    outs = await asyncio.gather(first, *waiting)
    assert time.perf_counter() - started < HANG  # no wait for the 10 min delay once the backend frees
    assert backend.batches == [1, 6, 6, 3]  # merged, never above maxBatchSize 8 (3 + 3 + 3 would be 9)
    for x, out in zip(xs, outs[1:], strict=True):
        np.testing.assert_allclose(out["y"], x @ W, rtol=1e-5, atol=1e-5)
    await b.stop()


@pytest.mark.asyncio
async def test_delay_bounds_how_long_a_forming_batch_waits_for_company() -> None:
    backend = LinearBackend(max_batch=1_000_000)
    b = make(backend, max_queue_delay_us=20_000, max_batch_size=65536, max_queue_size=1_000_000)
    started = time.perf_counter()
    tasks = []
    while not backend.batches and time.perf_counter() - started < HANG:  # a request every iteration
        tasks.append(asyncio.ensure_future(b.infer({"x": x_rows(1, len(tasks))})))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert backend.batches, "arrivals that never stop must not hold a batch back beyond the delay"
    assert 1 < backend.batches[0] < len(tasks)  # it collected company, then left without the rest
    assert sum(backend.batches) == len(tasks)
    await b.stop()


@pytest.mark.asyncio
async def test_zero_delay_runs_immediately() -> None:
    backend = LinearBackend()
    b = make(backend, max_queue_delay_us=0)
    for i in range(5):
        await asyncio.wait_for(b.infer({"x": x_rows(1, i)}), HANG)
    assert backend.batches == [1] * 5
    await b.stop()


@pytest.mark.asyncio
async def test_full_queue_answers_overloaded_at_once() -> None:
    backend = LinearBackend()
    backend.gate = threading.Event()  # the backend blocks: nothing leaves the queue
    b = make(backend, max_queue_size=4, max_batch_size=1, max_queue_delay_us=0)
    first = asyncio.ensure_future(b.infer({"x": x_rows(1, 0)}))
    await asyncio.sleep(0.05)  # the first request is now running (blocked) in the backend
    queued = [asyncio.ensure_future(b.infer({"x": x_rows(1, i)})) for i in range(4)]
    await asyncio.sleep(0)
    # at once: refused while the backend is still blocked (a queued request would wait for the gate,
    # which opens only below, and the hang guard would end it)
    with pytest.raises(OverloadedError, match="overloaded: 4 requests queued") as info:
        await asyncio.wait_for(b.infer({"x": x_rows(1, 9)}), HANG)
    assert info.value.http_status == 503
    backend.gate.set()
    await asyncio.gather(first, *queued)
    await b.stop()


@pytest.mark.asyncio
async def test_backend_exception_reaches_every_request_of_the_batch_after_each_ran_alone() -> None:
    backend = LinearBackend(fail=True)
    b = make(backend)
    results = await asyncio.gather(*(b.infer({"x": x_rows(2, i)}) for i in range(5)), return_exceptions=True)
    assert backend.batches == [10, 2, 2, 2, 2, 2]  # the merged batch, then each request alone
    assert all(isinstance(r, BackendError) and "device lost" in str(r) for r in results)
    assert all(r.http_status == 500 for r in results if isinstance(r, BackendError))
    backend.fail = False  # the batcher keeps working afterwards
    out = await b.infer({"x": x_rows(1, 0)})
    assert out["y"].shape == (1, 10)
    await b.stop()


class NanRefusingBackend(LinearBackend):
    """Fails a whole batch when any of its rows holds NaN (as a backend refuses one request's values)."""

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append(inputs["x"].shape[0])
        if np.isnan(inputs["x"]).any():
            raise InferenceError("the model cannot compute on these input values: NaN")
        return {"y": inputs["x"] @ W}


@pytest.mark.asyncio
@pytest.mark.parametrize("use_thread", [True, False])
async def test_one_bad_request_fails_alone_and_the_others_of_its_batch_are_answered(use_thread: bool) -> None:
    backend = NanRefusingBackend()
    b = make(backend, use_thread=use_thread)
    xs = [x_rows(2, 0), x_rows(3, 1), x_rows(1, 2), x_rows(2, 3)]
    xs[2][0, 5] = np.nan
    results = await asyncio.gather(*(b.infer({"x": x}) for x in xs), return_exceptions=True)
    assert backend.batches == [8, 2, 3, 1, 2]  # the merged batch, then each request alone, in order
    bad = results[2]
    assert isinstance(bad, InferenceError) and bad.http_status == 400 and "NaN" in str(bad)
    for i in (0, 1, 3):
        out = results[i]
        assert isinstance(out, dict), out
        np.testing.assert_allclose(out["y"], xs[i] @ W, rtol=1e-5)
    assert b.queued == 0
    await b.stop()


@pytest.mark.asyncio
async def test_cancelled_request_is_skipped() -> None:
    backend = LinearBackend()
    backend.gate = threading.Event()
    b = make(backend)
    running = asyncio.ensure_future(b.infer({"x": x_rows(1, 0)}))
    while not backend.entered.is_set():
        await asyncio.sleep(0.001)
    doomed = asyncio.ensure_future(b.infer({"x": x_rows(5, 0)}))
    kept = asyncio.ensure_future(b.infer({"x": x_rows(2, 1)}))
    await asyncio.sleep(0)
    doomed.cancel()  # as a request timeout does, while it waits in the queue
    backend.gate.set()
    out = await kept
    await running
    assert out["y"].shape == (2, 10)
    assert backend.batches == [1, 2]
    assert b.queued == 0
    await b.stop()


@pytest.mark.asyncio
async def test_mismatched_batch_dimension_and_stopped_batcher() -> None:
    class Two(LinearBackend):
        def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"y": inputs["x"] @ W}

    b = make(Two())
    with pytest.raises(InferenceError, match="same batch dimension"):
        await b.infer({"x": x_rows(2, 0), "z": x_rows(3, 0)})
    await b.stop()
    with pytest.raises(NotReadyError):
        await b.infer({"x": x_rows(1, 0)})


@pytest.mark.asyncio
async def test_metrics_record_batches_and_queue_time() -> None:
    backend = LinearBackend()
    b = make(backend)
    await asyncio.gather(*(b.infer({"x": x_rows(2, i)}) for i in range(4)))
    text = b.metrics.render().decode() if b.metrics else ""
    assert 'trtforge_batch_size_sum{model="m"} 8.0' in text
    assert 'trtforge_queue_duration_seconds_count{model="m"} 4.0' in text
    await b.stop()


@pytest.mark.asyncio
async def test_request_needing_more_batches_than_queue_slots_is_refused_whole() -> None:
    backend = LinearBackend(max_batch=4)
    b = make(backend, max_queue_size=3)
    with pytest.raises(OverloadedError, match="needs 4 batches"):
        await b.infer({"x": x_rows(13, 0)})
    assert backend.batches == [] and b.queued == 0
    out = await b.infer({"x": x_rows(12, 0)})
    assert out["y"].shape == (12, 10)
    await b.stop()
