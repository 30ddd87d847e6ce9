"""A converted model with five typed inputs (FP32, FP16, INT64, INT32, BOOL) and two outputs, served.

`trtforge convert` (onnxruntime backend) turns tests/runtime/convert/multi_io.py's model into an engine
folder; the real server answers V2 requests in JSON and in the binary extension with what onnxruntime
gives on the original model, returns only the `outputs` asked for, and refuses a missing input, an extra
input, a wrong datatype or a wrong shape with HTTP 400 naming the input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import multi_io
import numpy as np
import pytest
import tritonclient.http as httpclient
from serve_support import ServerThread, convert_onnx, rest_infer, serve
from test_profiles import sequence_model
from trtforge_runtime.serve.types import datatype_of

NAME = "multi"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(multi_io.build(tmp_path_factory.mktemp("multi") / "m.onnx"))


@pytest.fixture(scope="module")
def server(model: Path) -> Iterator[ServerThread]:
    srv = serve(convert_onnx(model, NAME))
    yield srv
    srv.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpclient.InferenceServerClient]:
    c = httpclient.InferenceServerClient(server.url)
    yield c
    c.close()


def _inputs(feeds: dict[str, np.ndarray], binary: bool) -> list[httpclient.InferInput]:
    out = []
    for name, a in feeds.items():
        inp = httpclient.InferInput(name, list(a.shape), datatype_of(a.dtype))
        inp.set_data_from_numpy(a, binary_data=binary)
        out.append(inp)
    return out


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_every_input_type_in_and_both_outputs_out(
    client: httpclient.InferenceServerClient, model: Path, binary: bool
) -> None:
    meta = client.get_model_metadata(NAME)
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [
        (n, dt) for n, (dt, _) in multi_io.INPUTS.items()
    ]
    feeds = multi_io.feeds(5, seed=7)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "score")]
    result = client.infer(NAME, _inputs(feeds, binary), outputs=outputs)
    want = multi_io.reference(model, feeds)
    for name in ("probabilities", "score"):
        np.testing.assert_allclose(result.as_numpy(name), want[name], rtol=1e-5, atol=1e-5)


def test_outputs_selects_one_output(client: httpclient.InferenceServerClient, model: Path) -> None:
    feeds = multi_io.feeds(3, seed=8)
    result = client.infer(
        NAME, _inputs(feeds, True), outputs=[httpclient.InferRequestedOutput("score", binary_data=False)]
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["score"]
    np.testing.assert_allclose(result.as_numpy("score"), multi_io.reference(model, feeds)["score"], atol=1e-5)


def test_requests_of_different_sizes_are_batched_and_answered_each(server: ServerThread, model: Path) -> None:
    """Concurrent requests (1..20 rows, some above the profile's max of 16) each get their own rows."""
    from concurrent.futures import ThreadPoolExecutor

    feeds = [multi_io.feeds(n, seed=n) for n in (1, 3, 7, 20, 2, 16, 5, 9)]

    def one(f: dict[str, np.ndarray]) -> np.ndarray:
        with httpclient.InferenceServerClient(server.url) as c:
            return np.asarray(c.infer(NAME, _inputs(f, True)).as_numpy("probabilities"))

    with ThreadPoolExecutor(len(feeds)) as pool:
        answers = list(pool.map(one, feeds))
    for f, got in zip(feeds, answers, strict=True):
        np.testing.assert_allclose(got, multi_io.reference(model, f)["probabilities"], atol=1e-5)


def _post(server: ServerThread, body: dict[str, Any]) -> tuple[int, str]:
    status, data = rest_infer(server.url, NAME, body)
    return status, data.decode()


def _json_inputs(feeds: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [
        {"name": n, "shape": list(a.shape), "datatype": datatype_of(a.dtype), "data": a.reshape(-1).tolist()}
        for n, a in feeds.items()
    ]


def _without(name: str) -> list[dict[str, Any]]:
    return [t for t in _json_inputs(multi_io.feeds(2)) if t["name"] != name]


def _changed(name: str, **fields: Any) -> list[dict[str, Any]]:
    return [t | fields if t["name"] == name else t for t in _json_inputs(multi_io.feeds(2))]


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        (_without("count"), "missing input tensor(s) 'count'"),
        (
            [
                *_json_inputs(multi_io.feeds(2)),
                {"name": "extra", "shape": [2, 1], "datatype": "FP32", "data": [1, 2]},
            ],
            "unknown input tensor 'extra'",
        ),
        (_changed("site", datatype="INT32"), "input tensor 'site': expected datatype INT64, received INT32"),
        (_changed("flag", data=[1, 0]), "tensor 'flag': BOOL data must be true/false"),
        (
            _changed("image", shape=[2, 16]),
            "input tensor 'image': expected shape [-1, 4, 4], received [2, 16]",
        ),
        (
            _json_inputs({"image": multi_io.feeds(3)["image"]}) + _without("image"),
            "input tensors disagree on the batch dimension",
        ),
    ],
    ids=["missing", "extra", "dtype", "bool-data", "shape", "batch"],
)
def test_bad_inputs_are_400_naming_the_input(
    server: ServerThread, inputs: list[dict[str, Any]], fragment: str
) -> None:
    code, body = _post(server, {"inputs": inputs})
    assert code == 400, body
    assert fragment in json.loads(body)["error"]


# ------------------------------------------------------------------ dynamic dimensions after the batch


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    model = sequence_model(tmp_path_factory.mktemp("sequence") / "m.onnx")
    inputs = [{"name": "tokens", "dims": [{"min": 2, "opt": 8, "max": 16}, {"min": 4, "opt": 4, "max": 4}]}]
    srv = serve(convert_onnx(model, "seq", inputs=inputs))
    yield srv, model
    srv.stop()


def test_sequences_of_different_lengths_are_answered_each(sequence: tuple[ServerThread, Path]) -> None:
    """Concurrent requests of lengths 2..16 (never merged across lengths) get their own answers."""
    from concurrent.futures import ThreadPoolExecutor

    server, model = sequence
    rng = np.random.default_rng(0)
    feeds = [
        {
            "tokens": rng.random((rows, seq, 4), dtype=np.float32),
            "extra": rng.random((rows, 3), dtype=np.float32),
        }
        for rows, seq in [(1, 2), (3, 16), (2, 5), (20, 8), (4, 5), (1, 16)]
    ]

    def one(f: dict[str, np.ndarray]) -> np.ndarray:
        with httpclient.InferenceServerClient(server.url) as c:
            return np.asarray(c.infer("seq", _inputs(f, True)).as_numpy("probabilities"))

    with ThreadPoolExecutor(len(feeds)) as pool:
        answers = list(pool.map(one, feeds))
    for f, got in zip(feeds, answers, strict=True):
        np.testing.assert_allclose(got, multi_io.reference(model, f)["probabilities"], atol=1e-5)


@pytest.mark.parametrize(("seq", "bound"), [(17, "2..16"), (1, "2..16")])
def test_a_length_outside_the_profile_is_400_naming_the_input(
    sequence: tuple[ServerThread, Path], seq: int, bound: str
) -> None:
    server, _ = sequence
    inputs = [
        {"name": "tokens", "shape": [1, seq, 4], "datatype": "FP32", "data": [0.5] * (seq * 4)},
        {"name": "extra", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 0.2, 0.3]},
    ]
    import http.client

    host, port = server.url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(
        "POST", "/v2/models/seq/infer", json.dumps({"inputs": inputs}), {"Content-Type": "application/json"}
    )
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    assert resp.status == 400, body
    assert f"input tensor 'tokens': dimension 1 is {seq}, outside the engine's profile {bound}" in body
