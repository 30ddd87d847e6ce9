"""Requests whose names, datatypes and shapes are right but whose values the model cannot compute on.

The multi-input model (tests/runtime/convert/multi_io.py) looks `site` up in an embedding of 5 rows, so
`site: 99` is a request the server only finds bad when onnxruntime runs it. Such a request is answered
400 with onnxruntime's reason, and when the batcher had merged it with other requests, those are still
answered, each with its own rows: one client's bad values never fail another client's request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import multi_io
import numpy as np
import pytest
from serve_support import ServerThread, convert_onnx, rest_infer, serve
from trtforge_runtime.errors import InferenceError
from trtforge_runtime.serve.backends.onnxruntime import OnnxRuntimeBackend
from trtforge_runtime.serve.batcher import Batcher
from trtforge_runtime.serve.types import datatype_of

NAME = "values"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    model = multi_io.build(tmp_path_factory.mktemp("values") / "m.onnx")
    return convert_onnx(model, NAME), model


def _feeds(rows: int, seed: int, site: int | None = None) -> dict[str, np.ndarray]:
    feeds: dict[str, np.ndarray] = multi_io.feeds(rows, seed=seed)
    if site is not None:
        feeds["site"][-1, 0] = site
    return feeds


def test_a_merged_batch_with_one_bad_request_answers_the_others(engine: tuple[Path, Path]) -> None:
    engine_dir, model = engine
    backend = OnnxRuntimeBackend(engine_dir / "onnxruntime" / "model.optimized.onnx", max_batch=16)
    backend.load()
    requests = [_feeds(2, 1), _feeds(3, 2), _feeds(1, 3, site=99), _feeds(2, 4)]

    async def run() -> tuple[list[Any], list[int]]:
        batcher = Batcher(
            backend,
            model=NAME,
            max_batch_size=16,
            max_queue_delay_us=100_000,
            max_queue_size=16,
            use_thread=False,
        )
        batcher.start()
        sizes: list[int] = []
        real = backend.infer

        def counting(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            sizes.append(len(inputs["site"]))
            return real(inputs)

        backend.infer = counting  # type: ignore[method-assign]
        try:
            # queued in one event-loop turn: the batcher merges all four into one batch
            answers = await asyncio.gather(*(batcher.infer(r) for r in requests), return_exceptions=True)
        finally:
            await batcher.stop()
        return answers, sizes

    answers, sizes = asyncio.run(run())
    assert sizes[0] == 8, sizes  # the four requests ran as one batch first
    bad = answers[2]
    assert isinstance(bad, InferenceError) and bad.http_status == 400, bad
    assert "indices element out of data bounds, idx=99" in str(bad)
    for i in (0, 1, 3):
        got = answers[i]
        assert isinstance(got, dict), got
        want = multi_io.reference(model, requests[i])
        for name in ("probabilities", "score"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def server(engine: tuple[Path, Path]) -> Iterator[ServerThread]:
    srv = serve(engine[0])
    yield srv
    srv.stop()


def _post(server: ServerThread, feeds: dict[str, np.ndarray]) -> tuple[int, dict[str, Any]]:
    body = {
        "inputs": [
            {
                "name": n,
                "shape": list(a.shape),
                "datatype": datatype_of(a.dtype),
                "data": a.reshape(-1).tolist(),
            }
            for n, a in feeds.items()
        ]
    }
    status, data = rest_infer(server.url, NAME, body)
    return status, json.loads(data)


def test_values_the_model_cannot_take_are_400_and_serving_goes_on(
    server: ServerThread, engine: tuple[Path, Path]
) -> None:
    status, body = _post(server, _feeds(2, 5, site=99))
    assert status == 400, body
    assert "the model cannot compute on these input values" in body["error"]
    assert "idx=99" in body["error"]
    good = _feeds(3, 6)
    status, body = _post(server, good)
    assert status == 200, body
    want = multi_io.reference(engine[1], good)["probabilities"]
    got = next(o for o in body["outputs"] if o["name"] == "probabilities")
    np.testing.assert_allclose(np.asarray(got["data"]).reshape(got["shape"]), want, atol=1e-5)
