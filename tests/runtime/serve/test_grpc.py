"""The gRPC front end, driven by the real `tritonclient.grpc` client against a server in a child process.

Covers the six RPCs, raw and typed tensor contents, the datatypes, output selection and request ids,
and bad input: each answered with the right gRPC status and a message naming the tensor, after which the
server still answers correctly. The server process is `grpc_app.py` (why a separate process: see there).
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
import tritonclient.grpc.aio as tc_aio
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

APP = Path(__file__).with_name("grpc_app.py")


def mlp(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The `mlp` model of grpc_app.py, recomputed here (same seed, same weights)."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(64, 10)).astype(np.float32) * 0.1, rng.normal(size=10).astype(np.float32)
    z = x @ w + b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class Server:
    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        self.log: list[str] = []
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.log.append(line)
                if line.startswith("PORT "):
                    self.url = f"127.0.0.1:{int(line.split()[1])}"
                    return
        self.proc.kill()
        raise RuntimeError("grpc_app did not start:\n" + "".join(self.log))

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode, "".join(self.log) + out


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    code, log = srv.stop()
    assert code == 0, log
    assert "STOPPED" in log


@pytest.fixture
def client(server: Server) -> Iterator[tc.InferenceServerClient]:
    c = tc.InferenceServerClient(server.url)
    yield c
    c.close()


@pytest.fixture
def stub(server: Server) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(server.url) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def pixels(rows: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 16, size=(rows, 64)).astype(np.float32)


def infer_input(name: str, data: np.ndarray, datatype: str) -> tc.InferInput:
    inp = tc.InferInput(name, list(data.shape), datatype)
    inp.set_data_from_numpy(data)
    return inp


def expect_error(exc: pytest.ExceptionInfo[InferenceServerException], code: str, *words: str) -> None:
    assert exc.value.status() == f"StatusCode.{code}", (exc.value.status(), exc.value.message())
    for word in words:
        assert word in (exc.value.message() or ""), exc.value.message()


def assert_still_serving(client: tc.InferenceServerClient) -> None:
    x = pixels(3, seed=99)
    result = client.infer("mlp", [infer_input("pixels", x, "FP32")])
    np.testing.assert_allclose(result.as_numpy("probabilities"), mlp(x), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ health, metadata
def test_health_and_metadata(client: tc.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert client.is_model_ready("mlp", "1")

    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "trtforge"
    assert "binary_tensor_data" in meta["extensions"]

    model = client.get_model_metadata("mlp", as_json=True)
    assert model["name"] == "mlp"
    assert model["versions"] == ["1"]
    assert model["platform"] == "onnxruntime_onnx"
    assert model["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": ["-1", "64"]}]
    assert model["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": ["-1", "10"]}]


def test_unknown_model_is_not_found(client: tc.InferenceServerClient) -> None:
    for call in (
        lambda: client.is_model_ready("nope"),
        lambda: client.get_model_metadata("nope"),
        lambda: client.get_model_metadata("mlp", "7"),
        lambda: client.infer("nope", [infer_input("pixels", pixels(1), "FP32")]),
        lambda: client.infer("mlp", [infer_input("pixels", pixels(1), "FP32")], model_version="7"),
    ):
        with pytest.raises(InferenceServerException) as exc:
            call()
        expect_error(exc, "NOT_FOUND")
    with pytest.raises(InferenceServerException) as exc:
        client.get_model_metadata("mlp", "7")
    expect_error(exc, "NOT_FOUND", "version '7'", "available versions: 1")


# ----------------------------------------------------------------------------------------------- infer
@pytest.mark.parametrize("rows", [1, 32, 256])
def test_infer_raw_contents(client: tc.InferenceServerClient, rows: int) -> None:
    x = pixels(rows)
    result = client.infer("mlp", [infer_input("pixels", x, "FP32")])
    out = result.as_numpy("probabilities")
    assert out.shape == (rows, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, mlp(x), rtol=1e-5, atol=1e-6)
    response = result.get_response()
    assert response.model_name == "mlp" and response.model_version == "1"
    assert len(response.raw_output_contents) == 1  # raw in, raw out


def test_request_id_and_output_selection(client: tc.InferenceServerClient) -> None:
    x = pixels(4)
    result = client.infer(
        "mlp",
        [infer_input("pixels", x, "FP32")],
        model_version="1",
        request_id="req-42",
        outputs=[tc.InferRequestedOutput("probabilities")],
    )
    assert result.get_response().id == "req-42"
    np.testing.assert_allclose(result.as_numpy("probabilities"), mlp(x), rtol=1e-5, atol=1e-6)

    with pytest.raises(InferenceServerException) as exc:
        client.infer("mlp", [infer_input("pixels", x, "FP32")], outputs=[tc.InferRequestedOutput("logits")])
    expect_error(exc, "INVALID_ARGUMENT", "'logits'", "probabilities")


def test_datatypes_round_trip_raw(client: tc.InferenceServerClient) -> None:
    ids = np.array([[1, -2, 3_000_000_000], [4, 5, -6]], dtype=np.int64)
    mask = np.array([[True, False, True], [False, False, True]])
    half = np.array([[0.5, 1.5, -2.0], [3.25, 0.0, 7.0]], dtype=np.float16)
    counts = np.array([[1, 2, 3], [-4, 5, 2_000_000_000]], dtype=np.int32)
    result = client.infer(
        "echo",
        [
            infer_input("ids", ids, "INT64"),
            infer_input("mask", mask, "BOOL"),
            infer_input("half", half, "FP16"),
            infer_input("counts", counts, "INT32"),
        ],
    )
    np.testing.assert_array_equal(result.as_numpy("ids_out"), ids * 2)
    np.testing.assert_array_equal(result.as_numpy("mask_out"), ~mask)
    np.testing.assert_array_equal(result.as_numpy("half_out"), half + np.float16(1))
    np.testing.assert_array_equal(result.as_numpy("counts_out"), counts - 1)
    assert result.as_numpy("half_out").dtype == np.float16


def test_typed_contents_answered_typed(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    x = pixels(2)
    req = service_pb2.ModelInferRequest(model_name="mlp", id="typed")
    t = req.inputs.add(name="pixels", datatype="FP32", shape=[2, 64])
    t.contents.fp32_contents.extend(x.ravel().tolist())
    resp = stub.ModelInfer(req)
    assert resp.id == "typed"
    assert not resp.raw_output_contents
    (out,) = resp.outputs
    assert out.name == "probabilities" and out.datatype == "FP32" and list(out.shape) == [2, 10]
    got = np.array(out.contents.fp32_contents, dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(got, mlp(x), rtol=1e-5, atol=1e-6)


def test_typed_integer_and_bool_contents(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    req = service_pb2.ModelInferRequest(model_name="echo")
    req.inputs.add(name="ids", datatype="INT64", shape=[1, 3]).contents.int64_contents.extend([7, -8, 9])
    req.inputs.add(name="mask", datatype="BOOL", shape=[1, 3]).contents.bool_contents.extend([True] * 3)
    req.inputs.add(name="half", datatype="FP16", shape=[1, 3])
    req.inputs.add(name="counts", datatype="INT32", shape=[1, 3]).contents.int_contents.extend([1, 2, 3])
    with pytest.raises(grpc.RpcError) as exc:
        stub.ModelInfer(req)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'half'" in exc.value.details() and "no data" in exc.value.details()

    # FP16 has no typed contents field: it must travel in raw_input_contents
    req.inputs[2].contents.int_contents.extend([1, 2, 3])
    with pytest.raises(grpc.RpcError) as exc:
        stub.ModelInfer(req)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'half'" in exc.value.details() and "send it in raw_input_contents" in exc.value.details()


# ------------------------------------------------------------------------------------------- bad input
def test_bad_tensor_name_shape_datatype(client: tc.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as exc:
        client.infer("mlp", [infer_input("image", pixels(1), "FP32")])
    expect_error(exc, "INVALID_ARGUMENT", "'image'", "pixels")

    with pytest.raises(InferenceServerException) as exc:
        client.infer("mlp", [infer_input("pixels", pixels(2)[:, :63].copy(), "FP32")])
    expect_error(exc, "INVALID_ARGUMENT", "'pixels'", "[-1, 64]", "[2, 63]")

    with pytest.raises(InferenceServerException) as exc:
        client.infer("mlp", [infer_input("pixels", pixels(2).astype(np.float64), "FP64")])
    expect_error(exc, "INVALID_ARGUMENT", "'pixels'", "FP32", "FP64")

    with pytest.raises(InferenceServerException) as exc:
        client.infer("mlp", [])
    expect_error(exc, "INVALID_ARGUMENT", "'pixels'")
    assert_still_serving(client)


def test_bad_raw_contents(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, client: tc.InferenceServerClient
) -> None:
    def call(req: service_pb2.ModelInferRequest) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as exc:
            stub.ModelInfer(req)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value.details()
        return exc.value

    req = service_pb2.ModelInferRequest(model_name="mlp")
    req.inputs.add(name="pixels", datatype="FP32", shape=[2, 64])
    req.raw_input_contents.append(pixels(2).tobytes()[:-4])
    err = call(req)
    assert "'pixels'" in err.details() and "512 bytes" in err.details() and "508" in err.details()

    req = service_pb2.ModelInferRequest(model_name="mlp")
    req.inputs.add(name="pixels", datatype="FP32", shape=[1, 64])
    req.raw_input_contents.extend([pixels(1).tobytes(), b"extra"])
    assert "raw_input_contents" in call(req).details()

    req = service_pb2.ModelInferRequest(model_name="mlp")
    req.inputs.add(name="pixels", datatype="FP32", shape=[2, 64]).contents.fp32_contents.extend([1.0] * 100)
    err = call(req)
    assert "'pixels'" in err.details() and "128" in err.details() and "100" in err.details()

    req = service_pb2.ModelInferRequest(model_name="mlp")
    req.inputs.add(name="pixels", datatype="FP32", shape=[1, 64]).contents.int64_contents.extend([1] * 64)
    assert "fp32_contents" in call(req).details()

    req = service_pb2.ModelInferRequest(model_name="mlp")
    req.inputs.add(name="pixels", datatype="FP32", shape=[1, 64])
    assert "no data" in call(req).details()

    req = service_pb2.ModelInferRequest(model_name="mlp")
    req.inputs.add(name="pixels", datatype="STRING", shape=[1, 64])
    req.raw_input_contents.append(b"x" * 64)
    assert "unsupported datatype" in call(req).details()

    req = service_pb2.ModelInferRequest(model_name="echo")
    for name, dt in (("ids", "INT32"), ("mask", "BOOL"), ("half", "FP16"), ("counts", "INT32")):
        req.inputs.add(name=name, datatype=dt, shape=[1, 3])
        req.raw_input_contents.append(b"\0" * (3 * (1 if dt == "BOOL" else 2 if dt == "FP16" else 4)))
    err = call(req)
    assert "'ids'" in err.details() and "INT64" in err.details()

    req = service_pb2.ModelInferRequest(model_name="echo")
    req.inputs.add(name="counts", datatype="INT32", shape=[1, 1]).contents.int_contents.append(1)
    err = call(req)
    assert "'counts'" in err.details()

    assert_still_serving(client)


def test_oversize_message_is_resource_exhausted(client: tc.InferenceServerClient) -> None:
    x = pixels(5000)  # 1.28 MB: over the app's 1 MiB message limit
    with pytest.raises(InferenceServerException) as exc:
        client.infer("mlp", [infer_input("pixels", x, "FP32")])
    expect_error(exc, "RESOURCE_EXHAUSTED")
    assert_still_serving(client)


def test_concurrent_clients(server: Server) -> None:
    async def run() -> None:
        async with tc_aio.InferenceServerClient(server.url) as c:

            async def one(i: int) -> None:
                x = pixels(1 + i % 7, seed=i)
                inp = tc_aio.InferInput("pixels", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                result = await c.infer("mlp", [inp], request_id=str(i))
                assert result.get_response().id == str(i)
                np.testing.assert_allclose(result.as_numpy("probabilities"), mlp(x), rtol=1e-5, atol=1e-6)

            await asyncio.gather(*(one(i) for i in range(64)))

    asyncio.run(run())


# ------------------------------------------------------------------------------------------- lifecycle
def test_sigterm_finishes_inflight_calls() -> None:
    srv = Server("--delay", "1.0")
    client = tc.InferenceServerClient(srv.url)
    results: list[object] = []
    x = pixels(2)

    def call() -> None:
        try:
            results.append(client.infer("mlp", [infer_input("pixels", x, "FP32")]).as_numpy("probabilities"))
        except Exception as exc:  # pragma: no cover - reported below
            results.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.3)  # the call is in flight (the model takes 1 s)
    code, log = srv.stop()
    worker.join(10)
    client.close()
    assert code == 0, log
    assert len(results) == 1 and isinstance(results[0], np.ndarray), results
    np.testing.assert_allclose(results[0], mlp(x), rtol=1e-5, atol=1e-6)
