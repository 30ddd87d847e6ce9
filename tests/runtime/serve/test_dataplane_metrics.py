"""The data plane's in-flight gauge (what the autoscaler reads) and its request deadline, in one process."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
from trtforge_runtime.errors import RequestTimeoutError
from trtforge_runtime.serve.dataplane import DataPlane, ServedModel
from trtforge_runtime.serve.types import InferRequest, ModelMetadata, Tensor, TensorSpec

SPEC = TensorSpec("x", "FP32", (-1, 2))


def inflight(dp: DataPlane) -> float:
    text = dp.metrics.render().decode()
    match = re.search(r'^trtforge_inflight_requests\{model="m"\} (\S+)$', text, re.M)
    assert match, text
    return float(match.group(1))


def plane(release: asyncio.Event, timeout: float = 30.0) -> DataPlane:
    async def infer(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        await release.wait()
        return {"y": inputs["x"] * 2}

    dp = DataPlane(request_timeout=timeout)
    meta = ModelMetadata("m", ("1",), "test", (SPEC,), (TensorSpec("y", "FP32", (-1, 2)),))
    dp.add_model(ServedModel("m", "1", meta, infer, ready=True))
    return dp


def request(rows: int = 1) -> InferRequest:
    data = np.ones((rows, 2), dtype=np.float32)
    return InferRequest(inputs=[Tensor("x", "FP32", (rows, 2), data, {})])


@pytest.mark.asyncio
async def test_inflight_gauge_counts_requests_being_served() -> None:
    release = asyncio.Event()
    dp = plane(release)
    tasks = [asyncio.create_task(dp.infer("m", None, request())) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert inflight(dp) == 3 and dp.inflight == 3
    release.set()
    for t in tasks:
        assert (await t).outputs[0].data.tolist() == [[2.0, 2.0]]
    assert inflight(dp) == 0 and dp.inflight == 0


@pytest.mark.asyncio
async def test_deadline_gives_request_timeout_and_other_requests_go_on() -> None:
    release = asyncio.Event()
    dp = plane(release, timeout=0.1)
    slow = asyncio.create_task(dp.infer("m", None, request()))
    with pytest.raises(RequestTimeoutError, match=r"timed out after 0\.1 s"):
        await slow
    assert inflight(dp) == 0
    release.set()
    assert (await dp.infer("m", None, request())).outputs[0].data.shape == (1, 2)
    # a cancellation from outside (client gone) stays a cancellation, not a timeout
    release.clear()
    task = asyncio.create_task(dp.infer("m", None, request()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inflight(dp) == 0
