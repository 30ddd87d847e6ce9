"""Dynamic batching in front of any backend: merge concurrent requests into one backend call.

Requests enter a bounded FIFO queue, each with its own future, and one loop forms batches from its head.
The policy (deterministic; it never sleeps on a timer):

1. A request that finds the backend idle does not wait for a deadline. The loop yields to the event loop
   one iteration at a time, so that requests already readable on other connections get parsed and
   queued, and keeps yielding only while the previous iteration added requests; it dispatches at the
   first iteration that adds none, or when the queued rows reach the batch limit, or when the oldest
   request has waited `max_queue_delay_us` (the upper bound on waiting for company; 0 turns the
   collecting off). A lone request therefore costs one loop iteration, not the delay.
2. Requests that arrive while a batch runs (the backend in its worker thread) accumulate, and run
   together as soon as the backend frees, without collecting again: they already waited one batch.
   With the backend inline on the event loop (onnxruntime) nothing can be read while it runs; what
   arrived meanwhile is read in the iterations of rule 1 after it.
3. A batch holds at most min(maxBatchSize, the engine profile's max) rows and only requests whose inputs
   can be concatenated; a single request above the limit is split into limit-sized chunks and
   reassembled. A full queue raises `OverloadedError` (503) at once rather than letting latency grow
   without bound; a backend failure is delivered to every request of the failed batch; requests that
   timed out or were cancelled while queued are skipped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtforge_runtime.errors import (
    BackendError,
    InferenceError,
    NotReadyError,
    OverloadedError,
    TrtforgeError,
)
from trtforge_runtime.serve.backends.base import Backend
from trtforge_runtime.serve.metrics import ServeMetrics

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


@dataclass(slots=True)
class _Item:
    inputs: Arrays
    rows: int
    key: tuple[Any, ...]  # inputs with the same key can be concatenated
    future: asyncio.Future[Arrays]
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(
        self,
        backend: Backend,
        *,
        model: str,
        max_batch_size: int,
        max_queue_delay_us: int,
        max_queue_size: int,
        metrics: ServeMetrics | None = None,
        use_thread: bool = True,
    ) -> None:
        self.backend = backend
        self.model = model
        self.profile_max = backend.metadata().max_batch
        self.limit = max(1, min(max_batch_size, self.profile_max))
        self.delay = max_queue_delay_us / 1e6
        self.max_queue_size = max_queue_size
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"backend-{model}") if use_thread else None
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_rows = 0
        self._arrivals = 0  # requests ever queued: tells the collecting loop whether an iteration added any
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        if metrics is not None:  # resolve label children once (labels() is slow)
            self._m_depth = metrics.queue_depth.labels(model)
            self._m_rows = metrics.batch_size.labels(model)
            self._m_requests = metrics.batch_requests.labels(model)
            self._m_compute = metrics.compute_time.labels(model)
            self._m_queue = metrics.queue_time.labels(model)

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.model}")

    async def stop(self) -> None:
        """Stop forming batches; requests still queued fail with NotReadyError (drain first to avoid it)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(NotReadyError(f"model '{self.model}' is shutting down"))
        self._queued_rows = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ---------------------------------------------------------------------------------------------- infer
    async def infer(self, inputs: Arrays) -> Arrays:
        """Queue one request (all inputs share the batch dimension) and wait for its outputs."""
        if self._closed or self._task is None:
            raise NotReadyError(f"model '{self.model}' is not serving")
        rows = _rows(inputs)
        if rows > self.limit:
            return await self._infer_split(inputs, rows)
        if len(self._queue) >= self.max_queue_size:
            raise OverloadedError(
                f"model '{self.model}' is overloaded: {len(self._queue)} requests queued "
                f"(maxQueueSize {self.max_queue_size}); retry later"
            )
        future: asyncio.Future[Arrays] = asyncio.get_running_loop().create_future()
        key = tuple((name, a.dtype.str, a.shape[1:]) for name, a in inputs.items())
        self._queue.append(_Item(inputs, rows, key, future))
        self._queued_rows += rows
        self._arrivals += 1
        if self.metrics is not None:
            self._m_depth.set(len(self._queue))
        if len(self._queue) == 1:  # the loop sleeps only on an empty queue
            self._wake.set()
        return await future

    async def _infer_split(self, inputs: Arrays, rows: int) -> Arrays:
        chunks = -(-rows // self.limit)
        if len(self._queue) + chunks > self.max_queue_size:
            raise OverloadedError(
                f"model '{self.model}' is overloaded: a request of {rows} rows needs {chunks} batches, "
                f"{len(self._queue)} of {self.max_queue_size} queue slots are taken; retry later"
            )
        parts = await asyncio.gather(
            *(
                self.infer({k: v[start : start + self.limit] for k, v in inputs.items()})
                for start in range(0, rows, self.limit)
            )
        )
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    # ------------------------------------------------------------------------------------------ the loop
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        idle = True  # the backend was idle when the head request arrived (rule 1), else rule 2
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                idle = True
                continue
            if self._queue[0].future.done():  # cancelled (timeout, client gone) while queued
                self._pop()
                continue
            if idle:
                await self._collect()
            batch = self._take()
            idle = False
            if batch:
                await self._execute(loop, batch)

    async def _collect(self) -> None:
        """Rule 1: yield to the event loop while each iteration adds requests, up to the limit/deadline."""
        if self.delay <= 0:
            return
        deadline = self._queue[0].enqueued + self.delay
        while self._queue and self._queued_rows < self.limit and time.perf_counter() < deadline:
            seen = self._arrivals
            await asyncio.sleep(0)  # one loop iteration: ready sockets are read, their requests queued
            if self._arrivals == seen:
                return

    def _pop(self) -> _Item:
        item = self._queue.popleft()
        self._queued_rows -= item.rows
        return item

    def _take(self) -> list[_Item]:
        """The oldest request and the queued ones that can join it (same key: every input's datatype
        and dimensions after the batch agree) up to the row limit, oldest first; requests of other
        shapes keep their places for the next batches."""
        batch: list[_Item] = []
        others: list[_Item] = []
        rows = 0
        key = None
        while self._queue:
            item = self._queue[0]
            if item.future.done():
                self._pop()
                continue
            if key is None:
                key = item.key
            elif item.key != key:
                others.append(self._pop())
                continue
            if batch and rows + item.rows > self.limit:
                break
            batch.append(self._pop())
            rows += item.rows
        if others:  # back in front, in their order
            self._queue.extendleft(reversed(others))
            self._queued_rows += sum(it.rows for it in others)
        if self.metrics is not None:
            self._m_depth.set(len(self._queue))
        return batch

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        started = time.perf_counter()
        rows = sum(it.rows for it in batch)
        if len(batch) == 1:
            merged = batch[0].inputs
        else:
            merged = {name: np.concatenate([it.inputs[name] for it in batch]) for name in batch[0].inputs}
        error: Exception | None = None
        try:
            outputs = await self._run(loop, merged, rows)
        except Exception as exc:
            error = exc
        finally:
            if self.metrics is not None:
                self._m_rows.observe(rows)
                self._m_requests.observe(len(batch))
                self._m_compute.observe(time.perf_counter() - started)
                for it in batch:
                    self._m_queue.observe(started - it.enqueued)
        if error is not None:
            if len(batch) == 1:
                self._fail(batch[0], error)
                return
            # one request's values may be what the backend refused: each runs alone, so that it gets the
            # error and the others their answers (a run per request, only after a failure)
            log.warning(
                "backend failed on a batch of %d requests (%s); running each alone", len(batch), error
            )
            for it in batch:
                await self._execute(loop, [it])
            return
        start = 0
        for it in batch:
            if not it.future.done():
                it.future.set_result({name: arr[start : start + it.rows] for name, arr in outputs.items()})
            start += it.rows

    async def _run(self, loop: asyncio.AbstractEventLoop, merged: Arrays, rows: int) -> Arrays:
        if self._executor is not None:
            outputs = await loop.run_in_executor(self._executor, self.backend.infer, merged)
        else:
            outputs = self.backend.infer(merged)
        for name, arr in outputs.items():
            if arr.ndim == 0 or arr.shape[0] != rows:
                raise BackendError(
                    f"backend returned output '{name}' with shape {list(arr.shape)} for a batch of {rows}"
                )
        return outputs

    def _fail(self, item: _Item, exc: Exception) -> None:
        err = exc if isinstance(exc, TrtforgeError) else BackendError(f"inference failed: {exc}")
        if not isinstance(exc, InferenceError):
            log.error("backend failed on a request of %d rows", item.rows, exc_info=exc)
        if not item.future.done():
            item.future.set_exception(err)


def _rows(inputs: Arrays) -> int:
    rows = {a.shape[0] if a.ndim else -1 for a in inputs.values()}
    if len(rows) != 1 or -1 in rows:
        raise InferenceError(f"all inputs need the same batch dimension, got {sorted(rows)}")
    return rows.pop()
