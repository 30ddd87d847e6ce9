"""The batcher at its edges: shutdown, refusal before start, odd inputs and outputs, the worker thread,
the row limit that ends collecting, a cancelled request in the middle of the queue, and its metrics.

(The main behaviour — merging, splitting, the dispatch policy, overload — is in test_batcher.py.)
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time

import numpy as np
import pytest
from trtforge_runtime.errors import BackendError, InferenceError, NotReadyError
from trtforge_runtime.serve.backends.base import BackendInfo
from trtforge_runtime.serve.batcher import Batcher
from trtforge_runtime.serve.metrics import ServeMetrics
from trtforge_runtime.serve.types import TensorSpec


class Backend:
    """A numpy backend: y = sum of each row (any width), recording each batch and the thread it ran in."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.threads: list[str] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.answer: object = None  # what to return instead of the real output (or an exception to raise)
        self.on_call: list[int] = []  # whatever the test wants recorded at each call

    def load(self) -> None:
        pass

    def unload(self) -> None:
        pass

    def metadata(self) -> BackendInfo:
        return BackendInfo(
            "numpy", (TensorSpec("x", "FP32", (-1, -1)),), (TensorSpec("y", "FP32", (-1,)),), 256
        )

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        x = inputs["x"]
        self.batches.append(x.shape[0])
        self.threads.append(threading.current_thread().name)
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer is not None:
            return self.answer  # type: ignore[return-value]
        return {"y": x.sum(axis=1)}


def rows(n: int, width: int = 4, value: float = 1.0) -> dict[str, np.ndarray]:
    return {"x": np.full((n, width), value, dtype=np.float32)}


def batcher(backend: Backend, *, start: bool = True, metrics: bool = True, **kw: object) -> Batcher:
    opts: dict[str, object] = {"max_batch_size": 64, "max_queue_delay_us": 20_000, "max_queue_size": 100}
    opts.update(kw)
    b = Batcher(backend, model="m", metrics=ServeMetrics() if metrics else None, **opts)  # type: ignore[arg-type]
    if start:
        b.start()
    return b


async def until(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.001)


def metric(b: Batcher, name: str) -> float:
    assert b.metrics is not None
    text = b.metrics.render().decode()
    m = re.search(rf'^{re.escape(name)}{{model="m"}} (\S+)$', text, re.M)
    assert m, f"{name} with model=m not in the metrics"
    return float(m.group(1))


# ------------------------------------------------------------------------------------------ lifecycle
@pytest.mark.asyncio
async def test_a_batcher_that_was_not_started_refuses_at_once() -> None:
    b = batcher(Backend(), start=False)
    with pytest.raises(NotReadyError, match="model 'm' is not serving"):
        await asyncio.wait_for(b.infer(rows(1)), 2)


@pytest.mark.asyncio
async def test_stop_fails_queued_requests_waits_for_the_running_batch_and_refuses_new_ones() -> None:
    backend = Backend()
    backend.gate = threading.Event()
    b = batcher(backend, max_queue_delay_us=0)
    running = asyncio.ensure_future(b.infer(rows(1)))
    await until(backend.entered)
    queued = [asyncio.ensure_future(b.infer(rows(2))) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert b.queued == 2
    threading.Timer(0.2, backend.gate.set).start()  # the running batch ends while stop() waits for it
    await b.stop()
    assert backend.batches == [1]  # stop() returned after the backend call ended, and nothing else ran
    for request in queued:
        with pytest.raises(NotReadyError, match="model 'm' is shutting down"):
            await request
    assert b.queued == 0
    with pytest.raises(NotReadyError, match="model 'm' is not serving"):
        await b.infer(rows(1))
    running.cancel()


# ------------------------------------------------------------------------------------------ inputs
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "inputs",
    [
        {"x": np.float32(1.0) * np.ones((), np.float32)},  # a scalar: no batch dimension
        {"x": np.ones((2, 4), np.float32), "z": np.ones((), np.float32)},
        {"x": np.ones((2, 4), np.float32), "z": np.ones((3, 4), np.float32)},
    ],
)
async def test_inputs_without_one_shared_batch_dimension_are_refused(inputs: dict[str, np.ndarray]) -> None:
    backend = Backend()
    b = batcher(backend)
    with pytest.raises(InferenceError, match="all inputs need the same batch dimension"):
        await asyncio.wait_for(b.infer(inputs), 2)
    assert backend.batches == [] and b.queued == 0
    await b.stop()


@pytest.mark.asyncio
async def test_requests_of_different_feature_shapes_never_share_a_batch() -> None:
    backend = Backend()
    b = batcher(backend)
    narrow, wide = await asyncio.gather(b.infer(rows(2, width=3)), b.infer(rows(3, width=5)))
    np.testing.assert_array_equal(narrow["y"], [3.0, 3.0])
    np.testing.assert_array_equal(wide["y"], [5.0, 5.0, 5.0])
    assert sorted(backend.batches) == [2, 3]
    await b.stop()


@pytest.mark.asyncio
async def test_a_limit_of_one_row_runs_every_request_alone() -> None:
    backend = Backend()
    b = batcher(backend, max_batch_size=1)
    out = await asyncio.gather(*(b.infer(rows(1, value=v)) for v in (1.0, 2.0, 3.0)))
    assert [o["y"].tolist() for o in out] == [[4.0], [8.0], [12.0]]
    assert backend.batches == [1, 1, 1]
    await b.stop()


# ------------------------------------------------------------------------------------------ outputs
@pytest.mark.asyncio
async def test_one_value_per_row_is_a_valid_output() -> None:
    backend = Backend()  # returns y with shape [rows]
    b = batcher(backend)
    out = await b.infer(rows(3))
    assert out["y"].shape == (3,)
    await b.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("answer", "shape"),
    [
        ({"y": np.float32(2.0) * np.ones((), np.float32)}, "[]"),
        ({"y": np.ones((5, 2), np.float32)}, "[5, 2]"),
    ],
)
async def test_an_output_without_the_batch_rows_is_a_backend_error(answer: object, shape: str) -> None:
    backend = Backend()
    backend.answer = answer
    b = batcher(backend)
    with pytest.raises(BackendError, match=re.escape(f"output 'y' with shape {shape} for a batch of 3")):
        await b.infer(rows(3))
    await b.stop()


@pytest.mark.asyncio
async def test_an_inference_error_of_the_backend_reaches_the_client_as_it_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Backend()
    backend.answer = InferenceError("input 'x' holds a NaN")
    b = batcher(backend)
    with (
        caplog.at_level(logging.ERROR, logger="trtforge_runtime.serve.batcher"),
        pytest.raises(InferenceError, match="input 'x' holds a NaN") as info,
    ):
        await b.infer(rows(1))
    assert type(info.value) is InferenceError  # not wrapped: the client's 400, not a server error
    assert not caplog.records  # a client's bad input is not a server failure to log
    await b.stop()


@pytest.mark.asyncio
async def test_any_other_backend_failure_is_a_logged_backend_error(caplog: pytest.LogCaptureFixture) -> None:
    backend = Backend()
    backend.answer = ZeroDivisionError("division by zero")
    b = batcher(backend)
    with (
        caplog.at_level(logging.ERROR, logger="trtforge_runtime.serve.batcher"),
        pytest.raises(BackendError, match="inference failed: division by zero"),
    ):
        await b.infer(rows(2))
    assert any("backend failed on a request of 2 rows" in r.getMessage() for r in caplog.records)
    await b.stop()


# ------------------------------------------------------------------------------------------ the thread
@pytest.mark.asyncio
async def test_the_backend_runs_in_the_models_own_worker_thread_by_default() -> None:
    backend = Backend()
    b = Batcher(backend, model="m", max_batch_size=8, max_queue_delay_us=0, max_queue_size=8)
    b.start()
    await b.infer(rows(1))
    await b.infer(rows(1))
    assert len(backend.threads) == 2 and all(t.startswith("backend-m") for t in backend.threads)
    await b.stop()


@pytest.mark.asyncio
async def test_without_metrics_it_serves_all_the_same() -> None:
    backend = Backend()
    b = batcher(backend, metrics=False)
    out = await asyncio.gather(*(b.infer(rows(2)) for _ in range(3)))
    assert all(o["y"].tolist() == [4.0, 4.0] for o in out)
    await b.stop()


# ------------------------------------------------------------------------------------------ collecting
@pytest.mark.asyncio
async def test_collecting_stops_as_soon_as_the_queued_rows_reach_the_limit() -> None:
    # a steady stream, one request per loop iteration, and a long delay: only the row limit can end the
    # collecting of the first batch (the backend runs inline, so the stream pauses while it runs)
    backend = Backend()
    submitted: list[int] = []
    real = backend.infer

    def infer(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        backend.on_call.append(len(submitted))
        return real(inputs)

    backend.infer = infer  # type: ignore[method-assign]
    b = batcher(backend, use_thread=False, max_batch_size=4, max_queue_delay_us=600_000_000)  # 10 min
    tasks = []
    started = time.perf_counter()
    for _ in range(40):
        tasks.append(asyncio.ensure_future(b.infer(rows(1))))
        submitted.append(1)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert backend.batches[0] == 4
    assert backend.on_call[0] <= 8, backend.on_call  # dispatched at the limit, not when the stream ended
    assert time.perf_counter() - started < 60.0  # far below the 10 min delay: nothing waited for it
    await b.stop()


@pytest.mark.asyncio
async def test_a_cancelled_request_in_the_middle_of_the_queue_does_not_split_the_batch() -> None:
    backend = Backend()
    backend.gate = threading.Event()
    b = batcher(backend)
    running = asyncio.ensure_future(b.infer(rows(1)))
    await until(backend.entered)
    first = asyncio.ensure_future(b.infer(rows(1)))
    doomed = asyncio.ensure_future(b.infer(rows(5)))
    last = asyncio.ensure_future(b.infer(rows(2)))
    await asyncio.sleep(0.01)
    doomed.cancel()
    backend.gate.set()
    await asyncio.gather(running, first, last)
    assert backend.batches == [1, 3]  # first and last together; the cancelled one skipped
    await b.stop()


# ------------------------------------------------------------------------------------------ metrics
@pytest.mark.asyncio
async def test_metrics_are_labelled_with_the_model_and_hold_real_durations() -> None:
    backend = Backend()
    backend.gate = threading.Event()
    b = batcher(backend)
    running = asyncio.ensure_future(b.infer(rows(1)))
    await until(backend.entered)
    queued = [asyncio.ensure_future(b.infer(rows(1))) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert metric(b, "trtforge_queue_depth") == 3.0
    backend.gate.set()
    await asyncio.gather(running, *queued)
    assert metric(b, "trtforge_queue_depth") == 0.0
    assert metric(b, "trtforge_batch_requests_count") == 2.0  # two batches: the lone one, then three
    assert metric(b, "trtforge_batch_requests_sum") == 4.0
    assert metric(b, "trtforge_batch_size_sum") == 4.0
    assert 0.0 < metric(b, "trtforge_batch_compute_seconds_sum") < 10.0
    assert 0.0 < metric(b, "trtforge_queue_duration_seconds_sum") < 10.0
    await b.stop()


@pytest.mark.asyncio
async def test_stop_leaves_no_task_behind() -> None:
    b = batcher(Backend())
    await b.infer(rows(1))
    mine = asyncio.current_task()
    assert any(t is not mine and not t.done() for t in asyncio.all_tasks())  # the batching loop
    await b.stop()
    assert [t for t in asyncio.all_tasks() if t is not mine and not t.done()] == []
