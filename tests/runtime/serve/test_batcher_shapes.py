"""The batcher with several inputs and a dynamic dimension after the batch: it concatenates along the
batch dimension only, and only requests whose every input agrees in datatype and in every other
dimension share a batch; each request gets its own rows back."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from trtforge_runtime.serve.backends.base import Backend, BackendInfo
from trtforge_runtime.serve.batcher import Batcher
from trtforge_runtime.serve.metrics import ServeMetrics
from trtforge_runtime.serve.types import TensorSpec


class SequenceBackend:
    """y = mean over the sequence of tokens, plus ids; records each batch's input shapes."""

    def __init__(self) -> None:
        self.batches: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        self.gate = threading.Event()

    def load(self) -> None:
        pass

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.gate.wait(5)  # hold the first batch so the others queue up together
        tokens, ids = inputs["tokens"], inputs["ids"]
        assert len(tokens) == len(ids)
        self.batches.append((tokens.shape, ids.shape))
        return {"y": tokens.mean(axis=1) + ids.astype(np.float32)}

    def unload(self) -> None:
        pass

    def metadata(self) -> BackendInfo:
        return BackendInfo(
            "numpy",
            (TensorSpec("tokens", "FP32", (-1, -1, 4)), TensorSpec("ids", "INT64", (-1, 1))),
            (TensorSpec("y", "FP32", (-1, 4)),),
            64,
        )


def request(rows: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "tokens": rng.random((rows, seq, 4), dtype=np.float32),
        "ids": rng.integers(0, 9, (rows, 1)).astype(np.int64),
    }


@pytest.mark.asyncio
async def test_only_requests_of_the_same_sequence_length_share_a_batch() -> None:
    backend = SequenceBackend()
    assert isinstance(backend, Backend)
    b = Batcher(
        backend,
        model="m",
        metrics=ServeMetrics(),
        max_batch_size=64,
        max_queue_delay_us=50_000,
        max_queue_size=100,
    )
    b.start()
    first = asyncio.ensure_future(b.infer(request(1, 2, 99)))
    await asyncio.sleep(0.05)  # the first batch is in the backend, held by its gate
    shapes = [(2, 3), (1, 5), (3, 3), (2, 5), (1, 3), (4, 7)]
    reqs = [request(rows, seq, i) for i, (rows, seq) in enumerate(shapes)]
    pending = [asyncio.ensure_future(b.infer(r)) for r in reqs]
    await asyncio.sleep(0.05)
    backend.gate.set()
    outs = await asyncio.gather(*pending)
    await first
    await b.stop()
    for r, out in zip(reqs, outs, strict=True):
        np.testing.assert_allclose(out["y"], r["tokens"].mean(axis=1) + r["ids"], rtol=1e-6)
    after_first = backend.batches[1:]
    # rows merged per sequence length (3: 2+3+1 rows, 5: 1+2, 7: 4), never across lengths; the batches
    # run in the order of their oldest request
    assert [(t[1], t[0]) for t, _ in after_first] == [(3, 6), (5, 3), (7, 4)], backend.batches
    assert all(ids[0] == tokens[0] for tokens, ids in after_first)
    assert b.queued == 0 and b._queued_rows == 0  # the rows of requests that waited are counted back
