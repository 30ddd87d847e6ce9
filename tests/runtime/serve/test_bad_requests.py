"""Bad requests to a served model of two inputs, one with a dynamic dimension, through `trtforge serve`.

The model (tests/runtime/convert/test_profiles.py's sequence model: `tokens` FP32 [batch, seq, 4] with
seq in 2..16, `extra` FP32 [batch, 3]) is converted by `trtforge convert` and served by the real
`trtforge serve` process with REST and gRPC on. Every bad request (a missing input, an extra input, a
wrong datatype, a shape outside the profile or the model, a data length that does not match the shape)
is sent in each wire format a client uses: V2 JSON, the binary tensor data extension, gRPC typed
contents and gRPC raw contents. Each gets HTTP 400 / gRPC INVALID_ARGUMENT (never 500 / INTERNAL) with a
message naming the input, and the server answers the next good request correctly.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from serve_support import ServeProcess, convert_onnx, rest_get, serve_process
from test_profiles import sequence_model

# the test process talks to the server with tritonclient's copy of the V2 protobuf (the server under
# test runs in its own process, so its stubs never meet these in one protobuf registry)
from tritonclient.grpc import service_pb2, service_pb2_grpc

NAME = "seq"
SEQ = {"min": 2, "opt": 8, "max": 16}  # the profile of tokens' dimension 1


@dataclass(frozen=True)
class Served(ServeProcess):
    model: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    model = sequence_model(tmp_path_factory.mktemp("bad-requests") / "m.onnx")
    batch = {"min": 1, "opt": 4, "max": 8}
    inputs = [{"name": "tokens", "dims": [SEQ, {"min": 4, "opt": 4, "max": 4}]}]
    with serve_process(convert_onnx(model, NAME, batch=batch, inputs=inputs), workers=1) as p:
        yield Served(p.rest, p.grpc, p.log, p.proc, model)


def _get(served: Served, path: str) -> tuple[int, bytes]:
    return rest_get(served.rest, path)


# ------------------------------------------------------------------------------------------ requests

Outcome = tuple[str, str, dict[str, np.ndarray]]  # status, error message, outputs


@dataclass(frozen=True)
class Input:
    """One input as a client declares it: name, datatype, shape, and the values it sends."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray  # flat, in the dtype the client sends


def _good(rows: int = 2, seq: int = 5) -> list[Input]:
    rng = np.random.default_rng(rows * 100 + seq)
    tokens = rng.random((rows, seq, 4), dtype=np.float32)
    extra = rng.random((rows, 3), dtype=np.float32)
    return [
        Input("tokens", "FP32", tokens.shape, tokens.reshape(-1)),
        Input("extra", "FP32", extra.shape, extra.reshape(-1)),
    ]


def _arrays(inputs: list[Input]) -> dict[str, np.ndarray]:
    return {t.name: t.data.reshape(t.shape) for t in inputs}


def _changed(name: str, **fields: object) -> list[Input]:
    return [replace(t, **fields) if t.name == name else t for t in _good()]  # type: ignore[arg-type]


BAD: dict[str, tuple[list[Input], list[str]]] = {
    "missing": ([t for t in _good() if t.name != "extra"], ["missing input tensor(s) 'extra'"]),
    "extra": (
        [*_good(), Input("bogus", "FP32", (2, 3), np.zeros(6, np.float32))],
        ["unknown input tensor 'bogus'", "tokens, extra"],
    ),
    "dtype": (
        _changed("extra", datatype="INT64", data=np.arange(6, dtype=np.int64)),
        ["input tensor 'extra': expected datatype FP32, received INT64"],
    ),
    "static-dim": (
        _changed("extra", shape=(2, 4), data=np.zeros(8, np.float32)),
        ["input tensor 'extra': expected shape [-1, 3], received [2, 4]"],
    ),
    "rank": (
        _changed("tokens", shape=(2, 20), data=np.zeros(40, np.float32)),
        ["input tensor 'tokens': expected shape [-1, -1, 4], received [2, 20]"],
    ),
    "above-profile": (
        _changed("tokens", shape=(2, 17, 4), data=np.zeros(2 * 17 * 4, np.float32)),
        ["input tensor 'tokens': dimension 1 is 17, outside the engine's profile 2..16"],
    ),
    "below-profile": (
        _changed("tokens", shape=(2, 1, 4), data=np.zeros(8, np.float32)),
        ["input tensor 'tokens': dimension 1 is 1, outside the engine's profile 2..16"],
    ),
    "zero-batch": (
        [Input("tokens", "FP32", (0, 5, 4), np.zeros(0, np.float32)), _good()[1]],
        ["'tokens'", "batch dimension must be at least 1"],
    ),
    "batches-disagree": (
        [_good(rows=3)[0], _good(rows=2)[1]],
        ["input tensors disagree on the batch dimension"],
    ),
    "data-short": (
        _changed("tokens", data=np.zeros(39, np.float32)),
        ["tensor 'tokens'", "[2, 5, 4]"],
    ),
    "data-long": (
        _changed("extra", data=np.zeros(7, np.float32)),
        ["tensor 'extra'", "[2, 3]"],
    ),
    "huge-shape": (
        _changed("tokens", shape=(2, 1 << 40, 4)),
        ["tensor 'tokens'"],
    ),
}


def _rest(served: Served, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    host, port = served.rest.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", f"/v2/models/{NAME}/infer", body, headers)
        resp = conn.getresponse()
        raw = resp.read()
        if resp.getheader("Inference-Header-Content-Length"):
            raw = raw[: int(resp.getheader("Inference-Header-Content-Length") or 0)]
        return resp.status, json.loads(raw)
    finally:
        conn.close()


def _json_value(t: Input) -> list[object]:
    values: list[object] = t.data.tolist()
    return values


def rest_json(served: Served, inputs: list[Input]) -> Outcome:
    doc = {
        "inputs": [
            {"name": t.name, "datatype": t.datatype, "shape": list(t.shape), "data": _json_value(t)}
            for t in inputs
        ]
    }
    status, body = _rest(served, json.dumps(doc).encode(), {"Content-Type": "application/json"})
    return _rest_outcome(status, body)


def rest_binary(served: Served, inputs: list[Input]) -> Outcome:
    doc = {
        "inputs": [
            {
                "name": t.name,
                "datatype": t.datatype,
                "shape": list(t.shape),
                "parameters": {"binary_data_size": t.data.nbytes},
            }
            for t in inputs
        ],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": False}}],
    }
    header = json.dumps(doc).encode()
    body = header + b"".join(t.data.tobytes() for t in inputs)
    status, answer = _rest(
        served,
        body,
        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
    )
    return _rest_outcome(status, answer)


def _rest_outcome(status: int, body: dict[str, object]) -> Outcome:
    if status != 200:
        return str(status), str(body.get("error")), {}
    outputs = body["outputs"]
    assert isinstance(outputs, list)
    return (
        "200",
        "",
        {o["name"]: np.asarray(o["data"], np.float32).reshape(o["shape"]) for o in outputs},
    )


_CONTENTS = {"FP32": "fp32_contents", "INT64": "int64_contents", "INT32": "int_contents"}


def _grpc_call(served: Served, request: service_pb2.ModelInferRequest) -> Outcome:
    with grpc.insecure_channel(served.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            reply = stub.ModelInfer(request, timeout=30)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details() or "", {}
    out = {}
    for i, t in enumerate(reply.outputs):
        data = (
            np.frombuffer(reply.raw_output_contents[i], np.float32)
            if reply.raw_output_contents
            else np.asarray(t.contents.fp32_contents, np.float32)
        )
        out[t.name] = data.reshape(list(t.shape))
    return "OK", "", out


def grpc_typed(served: Served, inputs: list[Input]) -> Outcome:
    req = service_pb2.ModelInferRequest(model_name=NAME)
    for t in inputs:
        tensor = req.inputs.add(name=t.name, datatype=t.datatype, shape=list(t.shape))
        getattr(tensor.contents, _CONTENTS[t.datatype]).extend(t.data.tolist())
    return _grpc_call(served, req)


def grpc_raw(served: Served, inputs: list[Input]) -> Outcome:
    req = service_pb2.ModelInferRequest(model_name=NAME)
    for t in inputs:
        req.inputs.add(name=t.name, datatype=t.datatype, shape=list(t.shape))
        req.raw_input_contents.append(t.data.tobytes())
    return _grpc_call(served, req)


Send = Callable[[Served, list[Input]], Outcome]
TRANSPORTS: dict[str, tuple[Send, str, str]] = {
    "rest-json": (rest_json, "200", "400"),
    "rest-binary": (rest_binary, "200", "400"),
    "grpc-typed": (grpc_typed, "OK", "INVALID_ARGUMENT"),
    "grpc-raw": (grpc_raw, "OK", "INVALID_ARGUMENT"),
}


def _reference(model: Path, inputs: list[Input]) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(["probabilities"], _arrays(inputs))[0]
    return out


def _assert_answers(served: Served, send: Send, ok: str, rows: int = 3, seq: int = 7) -> None:
    good = _good(rows, seq)
    status, message, outputs = send(served, good)
    assert status == ok, message
    np.testing.assert_allclose(outputs["probabilities"], _reference(served.model, good), atol=1e-5)


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_good_requests_are_answered_in_every_wire_format(served: Served, transport: str) -> None:
    send, ok, _ = TRANSPORTS[transport]
    for rows, seq in ((1, 2), (2, 16), (11, 9)):  # 11 rows: above the batch max of 8, split by the batcher
        _assert_answers(served, send, ok, rows, seq)


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_a_bad_request_is_refused_naming_the_input_and_serving_goes_on(
    served: Served, transport: str, case: str
) -> None:
    send, ok, refused = TRANSPORTS[transport]
    inputs, fragments = BAD[case]
    status, message, _ = send(served, inputs)
    assert status == refused, (status, message)
    for fragment in fragments:
        assert fragment in message, message
    _assert_answers(served, send, ok)
    assert served.proc.poll() is None


def test_the_binary_extension_refuses_sizes_that_do_not_add_up(served: Served) -> None:
    """binary_data_size larger than the bytes sent, or bytes left over: 400 naming the input or the body."""
    good = _good()
    header_doc = {
        "inputs": [
            {
                "name": t.name,
                "datatype": t.datatype,
                "shape": list(t.shape),
                "parameters": {"binary_data_size": t.data.nbytes},
            }
            for t in good
        ]
    }
    header = json.dumps(header_doc).encode()
    payload = b"".join(t.data.tobytes() for t in good)
    for body, fragment in (
        (header + payload[:-4], "input tensor 'extra': binary_data_size is 24 bytes but only 20 bytes"),
        (header + payload + b"\0" * 4, "binary_data_size parameters add up to"),
    ):
        status, answer = _rest(
            served,
            body,
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
        )
        assert status == 400 and fragment in str(answer["error"]), answer
    _assert_answers(served, rest_binary, "200")


def test_nothing_was_answered_500_and_the_server_logged_no_traceback(served: Served) -> None:
    """After the cases above (and one more of its own), the server's metrics count no 5xx answer."""
    assert rest_json(served, BAD["missing"][0])[0] == "400"
    status, body = _get(served, "/metrics")
    assert status == 200
    lines = [ln for ln in body.decode().splitlines() if ln.startswith("trtforge_requests_total{")]
    assert any('code="400"' in ln and not ln.endswith(" 0.0") for ln in lines), lines
    assert not [ln for ln in lines if 'code="5' in ln and not ln.endswith(" 0.0")], lines
    assert "Traceback" not in served.log.read_text()
