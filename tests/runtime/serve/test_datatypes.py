"""Every V2 datatype the REST front end promises (FP32, FP16, INT32, INT64, BOOL...), JSON and binary,
through the real front end and data plane with a model that transforms each input in a checkable way."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
from trtforge_runtime.serve.dataplane import DataPlane, ServedModel
from trtforge_runtime.serve.http1 import HttpProtocol
from trtforge_runtime.serve.rest import RestApp
from trtforge_runtime.serve.types import ModelMetadata, TensorSpec

TYPES = {
    "f32": "FP32",
    "f16": "FP16",
    "i32": "INT32",
    "i64": "INT64",
    "b": "BOOL",
    "u8": "UINT8",
    "f64": "FP64",
}

JSON_DTYPES = {"FP32": np.float32, "FP16": np.float16, "INT32": np.int32, "INT64": np.int64}


async def transform(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "f32_out": inputs["f32"] * 2,
        "f16_out": (inputs["f16"] + 1).astype(np.float16),
        "i32_out": inputs["i32"] - 1,
        "i64_out": inputs["i64"] * 3,
        "b_out": ~inputs["b"],
        "u8_out": inputs["u8"] // 2,
        "f64_out": inputs["f64"] / 4,
    }


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    specs = tuple(TensorSpec(k, v, (-1, 3)) for k, v in TYPES.items())
    outs = tuple(TensorSpec(f"{k}_out", v, (-1, 3)) for k, v in TYPES.items())
    dp = DataPlane()
    dp.add_model(
        ServedModel("echo", "1", ModelMetadata("echo", ("1",), "test", specs, outs), transform, ready=True)
    )
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    async def start() -> None:
        holder["server"] = await loop.create_server(
            lambda: HttpProtocol(RestApp(dp, max_body_bytes=1 << 20)), "127.0.0.1", 0
        )

    def main() -> None:
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    started.wait(10)
    port = holder["server"].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    loop.call_soon_threadsafe(holder["server"].close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "f32": rng.normal(size=(2, 3)).astype(np.float32),
        "f16": rng.normal(size=(2, 3)).astype(np.float16),
        "i32": rng.integers(-1000, 1000, (2, 3)).astype(np.int32),
        "i64": rng.integers(-(2**40), 2**40, (2, 3)).astype(np.int64),
        "b": rng.integers(0, 2, (2, 3)).astype(bool),
        "u8": rng.integers(0, 255, (2, 3)).astype(np.uint8),
        "f64": rng.normal(size=(2, 3)),
    }


def check(outputs: dict[str, np.ndarray], x: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(outputs["f32_out"], x["f32"] * 2, rtol=1e-6)
    np.testing.assert_allclose(outputs["f16_out"], (x["f16"] + 1).astype(np.float16), rtol=1e-3)
    np.testing.assert_array_equal(outputs["i32_out"], x["i32"] - 1)
    np.testing.assert_array_equal(outputs["i64_out"], x["i64"] * 3)
    np.testing.assert_array_equal(outputs["b_out"], ~x["b"])
    np.testing.assert_array_equal(outputs["u8_out"], x["u8"] // 2)
    np.testing.assert_allclose(outputs["f64_out"], x["f64"] / 4, rtol=1e-12)


def test_binary_round_trip_of_every_datatype(url: str) -> None:
    client = httpclient.InferenceServerClient(url)
    x = arrays()
    inputs = []
    for name, arr in x.items():
        inp = httpclient.InferInput(name, list(arr.shape), TYPES[name])
        inp.set_data_from_numpy(arr, binary_data=True)
        inputs.append(inp)
    outs = [httpclient.InferRequestedOutput(f"{k}_out", binary_data=True) for k in TYPES]
    result = client.infer("echo", inputs, outputs=outs)
    got = {f"{k}_out": result.as_numpy(f"{k}_out") for k in TYPES}
    for k, v in TYPES.items():
        assert result.get_output(f"{k}_out")["datatype"] == v
    check(got, x)


def test_json_round_trip_of_every_datatype(url: str) -> None:
    import http.client

    x = arrays()
    doc = {
        "inputs": [
            {"name": k, "shape": [2, 3], "datatype": TYPES[k], "data": v.reshape(-1).tolist()}
            for k, v in x.items()
        ]
    }
    host, port = url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v2/models/echo/infer", body=json.dumps(doc))
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 200, body
    got = {}
    for out in body["outputs"]:
        dtype = JSON_DTYPES.get(out["datatype"])
        got[out["name"]] = np.array(out["data"], dtype=dtype).reshape(out["shape"])
    assert isinstance(body["outputs"][4]["data"][0], bool)  # BOOL as JSON true/false
    check(got, x)


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("i32", [1.5, 2, 3, 4, 5, 6], "INT32 data must be integers"),
        ("i64", [1, 2, 3, 4, 5, 6.25], "INT64 data must be integers"),
        ("b", [1, 0, 1, 0, 1, 0], "BOOL data must be true/false"),
        ("u8", [1, 2, 3, 4, 5, 300], "not a list of UINT8 values"),
    ],
)
def test_json_values_that_do_not_fit_the_datatype(
    url: str, name: str, data: list[object], fragment: str
) -> None:
    import http.client

    x = arrays()
    doc = {
        "inputs": [
            {
                "name": k,
                "shape": [2, 3],
                "datatype": TYPES[k],
                "data": data if k == name else v.reshape(-1).tolist(),
            }
            for k, v in x.items()
        ]
    }
    host, port = url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v2/models/echo/infer", body=json.dumps(doc))
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 400
    assert f"tensor '{name}'" in body["error"] and fragment in body["error"]
