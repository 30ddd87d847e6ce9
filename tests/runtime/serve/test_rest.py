"""The REST front end against real clients: tritonclient.http (JSON and binary) and raw HTTP for bad input."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from serve_support import INPUT, OUTPUT, ServerThread, reference_outputs
from tritonclient.utils import InferenceServerException


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 16, (n, 64)).astype(np.float32)


def expected(engine_dir: Path, x: np.ndarray) -> np.ndarray:
    return reference_outputs(engine_dir / "onnxruntime" / "model.onnx", x)


def request(
    server: ServerThread,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post_json(server: ServerThread, doc: Any, path: str = "/v2/models/digits/infer") -> tuple[int, Any]:
    status, _, body = request(server, "POST", path, json.dumps(doc).encode())
    return status, json.loads(body)


def assert_serving(server: ServerThread) -> None:
    status, doc = post_json(
        server, {"inputs": [{"name": INPUT, "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}
    )
    assert status == 200, doc
    assert len(doc["outputs"][0]["data"]) == 10


@pytest.fixture(scope="module")
def client(server: ServerThread) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(server.url, concurrency=4)


# ------------------------------------------------------------------------------------------ tritonclient


def test_health_and_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "1")
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata("digits")
    assert meta["name"] == "digits"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": INPUT, "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, 10]}]
    assert client.get_model_metadata("digits", "1") == meta
    server_meta = client.get_server_metadata()
    assert server_meta["name"] == "trtforge"
    assert "binary_tensor_data" in server_meta["extensions"]


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_infer_json_and_binary(
    client: httpclient.InferenceServerClient, engine_dir: Path, binary_in: bool, binary_out: bool
) -> None:
    x = rows(5, seed=int(binary_in) * 2 + int(binary_out))
    inp = httpclient.InferInput(INPUT, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    out = httpclient.InferRequestedOutput(OUTPUT, binary_data=binary_out)
    result = client.infer("digits", [inp], outputs=[out], request_id=f"req-{binary_in}-{binary_out}")
    got = result.as_numpy(OUTPUT)
    assert got.dtype == np.float32
    assert got.shape == (5, 10)
    np.testing.assert_allclose(got, expected(engine_dir, x), rtol=1e-5, atol=1e-6)
    assert result.get_response()["id"] == f"req-{binary_in}-{binary_out}"
    assert result.get_response()["model_version"] == "1"


def test_infer_without_outputs_returns_all_and_versioned_path(
    client: httpclient.InferenceServerClient, engine_dir: Path
) -> None:
    x = rows(3, seed=7)
    inp = httpclient.InferInput(INPUT, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    result = client.infer("digits", [inp], model_version="1")
    np.testing.assert_allclose(result.as_numpy(OUTPUT), expected(engine_dir, x), rtol=1e-5, atol=1e-6)


def test_unknown_output_and_model_via_tritonclient(client: httpclient.InferenceServerClient) -> None:
    x = rows(1)
    inp = httpclient.InferInput(INPUT, [1, 64], "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="unknown output tensor 'logits'"):
        client.infer("digits", [inp], outputs=[httpclient.InferRequestedOutput("logits")])
    with pytest.raises(InferenceServerException, match="unknown model 'other'"):
        client.infer("other", [inp])
    with pytest.raises(InferenceServerException, match="unknown version '2'"):
        client.infer("digits", [inp], model_version="2")


def test_many_concurrent_requests_are_batched_correctly(
    client: httpclient.InferenceServerClient, engine_dir: Path
) -> None:
    xs = [rows(1 + i % 3, seed=100 + i) for i in range(24)]
    pending = []
    for i, x in enumerate(xs):
        inp = httpclient.InferInput(INPUT, list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=i % 2 == 0)
        pending.append(client.async_infer("digits", [inp], request_id=str(i)))
    for i, (x, p) in enumerate(zip(xs, pending, strict=True)):
        result = p.get_result()
        assert result.get_response()["id"] == str(i)
        np.testing.assert_allclose(result.as_numpy(OUTPUT), expected(engine_dir, x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- bad input


def good_input(**overrides: Any) -> dict[str, Any]:
    doc = {"name": INPUT, "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}
    doc.update(overrides)
    return doc


@pytest.mark.parametrize(
    ("path", "code", "fragment"),
    [
        ("/v2/models/nope/infer", 404, "unknown model 'nope'"),
        ("/v2/models/digits/versions/7/infer", 404, "unknown version '7' of model 'digits'"),
        ("/v2/models/nope", 404, "unknown model 'nope'"),
    ],
)
def test_unknown_model_or_version(server: ServerThread, path: str, code: int, fragment: str) -> None:
    if path.endswith("/infer"):
        status, doc = post_json(server, {"inputs": [good_input()]}, path)
    else:
        status, _, body = request(server, "GET", path)
        doc = json.loads(body)
    assert status == code
    assert fragment in doc["error"]
    assert_serving(server)


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        (good_input(name="image"), "unknown input tensor 'image'"),
        (
            good_input(shape=[1, 63], data=[0.5] * 63),
            "input tensor 'pixels': expected shape [-1, 64], received [1, 63]",
        ),
        (good_input(shape=[64], data=[0.5] * 64), "expected shape [-1, 64], received [64]"),
        (good_input(datatype="FP64"), "input tensor 'pixels': expected datatype FP32, received FP64"),
        (good_input(datatype="INT32", data=[1] * 64), "expected datatype FP32, received INT32"),
        (good_input(datatype="STRING"), "unsupported datatype 'STRING'"),
        (good_input(data=[0.5] * 63), "tensor 'pixels': expected 64 values for shape [1, 64], received 63"),
        (good_input(data=[[0.5] * 64, [0.5] * 3]), "inhomogeneous"),
        (good_input(data=["a"] * 64), "tensor 'pixels': data is not a list of FP32 values"),
        (good_input(shape=[1, -64]), "shape must be a list of non-negative integers"),
        (good_input(shape=[0, 64], data=[]), "batch dimension must be at least 1"),
        ({"shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}, "'name' must be a non-empty string"),
    ],
)
def test_bad_tensors_are_400_naming_the_problem(
    server: ServerThread, tensor: dict[str, Any], fragment: str
) -> None:
    status, doc = post_json(server, {"inputs": [tensor]})
    assert status == 400, doc
    assert set(doc) == {"error"}
    assert fragment in doc["error"]
    assert_serving(server)


def test_binary_size_without_binary_section(server: ServerThread) -> None:
    for size in (0, 256):
        tensor = {
            "name": INPUT,
            "shape": [1, 64],
            "datatype": "FP32",
            "parameters": {"binary_data_size": size},
        }
        status, doc = post_json(server, {"inputs": [tensor]})
        assert status == 400
        assert "binary_data_size is set but the request has no binary data" in doc["error"]
    assert_serving(server)


def test_missing_and_duplicate_inputs(server: ServerThread) -> None:
    status, doc = post_json(server, {"inputs": []})
    assert status == 400 and "non-empty 'inputs'" in doc["error"]
    status, doc = post_json(server, {"inputs": [good_input(), good_input()]})
    assert status == 400 and "given more than once" in doc["error"]
    status, doc = post_json(server, {"id": 5, "inputs": [good_input()]})
    assert status == 400 and "'id' must be a string" in doc["error"]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[1, 2]", b'{"inputs": "x"}', b'{"inputs": [1]}', b"\xff\xfe", b"null"],
)
def test_malformed_json_is_400(server: ServerThread, body: bytes) -> None:
    status, headers, raw = request(server, "POST", "/v2/models/digits/infer", body)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "error" in json.loads(raw)
    assert_serving(server)


def binary_body(header: dict[str, Any], payload: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + payload, {"Inference-Header-Content-Length": str(len(head))}


def test_binary_byte_length_mismatch_names_tensor(server: ServerThread) -> None:
    x = rows(2)
    header = {
        "inputs": [
            {"name": INPUT, "shape": [2, 64], "datatype": "FP32", "parameters": {"binary_data_size": 508}}
        ]
    }
    body, headers = binary_body(header, x.tobytes()[:508])
    status, _, raw = request(server, "POST", "/v2/models/digits/infer", body, headers)
    assert status == 400
    assert (
        "tensor 'pixels': expected 512 bytes for shape [2, 64] of FP32, received 508 bytes"
        in json.loads(raw)["error"]
    )
    header["inputs"][0]["parameters"]["binary_data_size"] = 512
    body, headers = binary_body(header, x.tobytes())  # 512 declared, 512 sent, but the shape needs 512: ok
    status, _, raw = request(server, "POST", "/v2/models/digits/infer", body, headers)
    assert status == 200, raw
    body, headers = binary_body(header, x.tobytes() + b"\0\0\0\0")
    status, _, raw = request(server, "POST", "/v2/models/digits/infer", body, headers)
    assert status == 400 and "binary_data_size parameters add up to 512" in json.loads(raw)["error"]
    assert_serving(server)


@pytest.mark.parametrize(
    ("header_value", "fragment"),
    [("abc", "not an integer"), ("0", "Inference-Header-Content-Length is 0"), ("999999", "is 999999")],
)
def test_malformed_binary_header(server: ServerThread, header_value: str, fragment: str) -> None:
    body, _ = binary_body({"inputs": [good_input()]}, b"")
    status, _, raw = request(
        server, "POST", "/v2/models/digits/infer", body, {"Inference-Header-Content-Length": header_value}
    )
    assert status == 400
    assert fragment in json.loads(raw)["error"]
    # a header length that cuts the JSON in half
    status, _, raw = request(
        server, "POST", "/v2/models/digits/infer", body, {"Inference-Header-Content-Length": "10"}
    )
    assert status == 400 and "malformed JSON in the JSON header" in json.loads(raw)["error"]
    assert_serving(server)


def test_binary_output_via_request_parameter(server: ServerThread, engine_dir: Path) -> None:
    x = rows(2, seed=3)
    doc = {
        "parameters": {"binary_data_output": True},
        "inputs": [good_input(shape=[2, 64], data=x.reshape(-1).tolist())],
    }
    status, headers, raw = request(server, "POST", "/v2/models/digits/infer", json.dumps(doc).encode())
    assert status == 200
    n = int(headers["inference-header-content-length"])
    head = json.loads(raw[:n])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 80
    got = np.frombuffer(raw[n:], dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(got, expected(engine_dir, x), rtol=1e-5, atol=1e-6)


def test_oversize_body_is_413_and_server_keeps_serving(server: ServerThread) -> None:
    limit = server.settings.max_body_bytes
    status, headers, raw = request(server, "POST", "/v2/models/digits/infer", b"x" * (limit + 1))
    assert status == 413
    assert "exceeds the limit" in json.loads(raw)["error"]
    assert headers.get("connection") == "close"
    assert_serving(server)


def test_oversize_chunked_body_is_413(server: ServerThread) -> None:
    host, port = server.url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"y" * 65536
        try:
            for _ in range(server.settings.max_body_bytes // len(chunk) + 2):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server may stop reading once it answered
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 413")
    assert_serving(server)


def test_malformed_http_and_routes(server: ServerThread) -> None:
    host, port = server.url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
    status, _, raw = request(server, "GET", "/v2/models/digits/infer")
    assert status == 405 and "use POST" in json.loads(raw)["error"]
    status, _, raw = request(server, "GET", "/nothing")
    assert status == 404 and "no route" in json.loads(raw)["error"]
    status, _, raw = request(server, "POST", "/v2/models/digits/whatever", b"{}")
    assert status == 404
    assert_serving(server)


def test_pipelined_keepalive_requests_answer_in_order(server: ServerThread) -> None:
    host, port = server.url.split(":")
    bodies = [json.dumps({"id": str(i), "inputs": [good_input()]}).encode() for i in range(5)]
    raw = b""
    for i, b in enumerate(bodies):
        raw += b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
            len(b),
            b,
        )
        if i == 2:
            raw += b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while data.count(b"HTTP/1.1 200") < 6:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    ids = [data.find(b'"id":"%d"' % i) for i in range(5)]
    assert ids == sorted(ids) and -1 not in ids
    live = data.find(b'{"live":true}')
    assert ids[2] < live < ids[3]


def test_metrics_expose_inflight_gauge_and_counters(server: ServerThread) -> None:
    assert_serving(server)
    status, headers, raw = request(server, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    text = raw.decode()
    assert 'trtforge_inflight_requests{model="digits"} 0.0' in text
    assert 'trtforge_requests_total{code="200",model="digits",protocol="rest"}' in text
    assert 'trtforge_requests_total{code="400"' in text
    assert "trtforge_batch_size_bucket" in text
    assert "trtforge_queue_duration_seconds_bucket" in text
    assert 'trtforge_reference_check_passed{backend="onnxruntime",model="digits"} 1.0' in text
    assert "trtforge_backend_info{" in text and 'backend="onnxruntime"' in text


def test_expect_continue_and_chunked_request_body(server: ServerThread) -> None:
    host, port = server.url.split(":")
    body = json.dumps({"id": "c", "inputs": [good_input()]}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200") and b'"id":"c"' in reply
        half = len(body) // 2
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
        )
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200") and b'"id":"c"' in reply
    status, headers, raw = request(server, "HEAD", "/v2/health/ready")
    assert status == 200 and raw == b"" and headers["content-length"] == str(len(b'{"ready":true}'))
