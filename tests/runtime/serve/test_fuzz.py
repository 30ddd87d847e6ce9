"""Property-based fuzzing of the REST front end: malformed requests get 4xx, never 5xx, and the server
keeps answering correctly afterwards."""

from __future__ import annotations

import http.client
import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_support import INPUT, ServerThread

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=8)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
DATATYPES = st.sampled_from(["FP32", "FP16", "FP64", "INT32", "INT64", "BOOL", "UINT8", "BYTES", "fp32", ""])
SHAPES = st.lists(st.integers(-3, 70), max_size=4) | JSON_VALUES


MOSTLY = st.sampled_from([True, True, True, False])  # mostly valid fields, so deeper checks are reached


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if draw(MOSTLY):
        doc["name"] = (
            draw(st.sampled_from([INPUT, INPUT, "x", "", "pixels "])) if draw(MOSTLY) else draw(JSON_VALUES)
        )
    if draw(MOSTLY):
        doc["datatype"] = (
            draw(st.sampled_from(["FP32", "FP32"]) | DATATYPES) if draw(MOSTLY) else draw(JSON_VALUES)
        )
    if draw(MOSTLY):
        rows = draw(st.integers(0, 3))
        doc["shape"] = [rows, 64] if draw(MOSTLY) else draw(SHAPES)
    choice = draw(st.integers(0, 3))
    if choice == 0:
        doc["data"] = draw(st.lists(st.floats(allow_nan=False, width=32), max_size=140))
    elif choice == 1:
        doc["data"] = draw(JSON_VALUES)
    elif choice == 2:
        doc["parameters"] = {
            "binary_data_size": draw(st.sampled_from([0, 256, 512]) | st.integers(-5, 600) | JSON_VALUES)
        }
    else:
        doc["parameters"] = draw(JSON_VALUES)
    return doc


def valid_document(rows: int, binary: bool) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": INPUT, "shape": [rows, 64], "datatype": "FP32"}
    if binary:
        tensor["parameters"] = {"binary_data_size": rows * 64 * 4}
    else:
        tensor["data"] = [0.5] * (rows * 64)
    return {"id": "r", "inputs": [tensor], "outputs": [{"name": "probabilities"}]}


MUTATION_PATHS = [
    ("inputs",),
    ("inputs", 0),
    ("inputs", 0, "name"),
    ("inputs", 0, "shape"),
    ("inputs", 0, "shape", 0),
    ("inputs", 0, "shape", 1),
    ("inputs", 0, "datatype"),
    ("inputs", 0, "data"),
    ("inputs", 0, "parameters"),
    ("inputs", 0, "parameters", "binary_data_size"),
    ("outputs",),
    ("outputs", 0, "name"),
    ("outputs", 0, "parameters"),
    ("id",),
    ("parameters",),
]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A valid request (JSON or binary) with one to three fields replaced or deleted."""
    rows, binary = draw(st.integers(1, 3)), draw(st.booleans())
    doc = valid_document(rows, binary)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(MUTATION_PATHS))
        parent: Any = doc
        for key in path[:-1]:
            in_dict = isinstance(parent, dict) and isinstance(key, str) and key in parent
            in_list = isinstance(parent, list) and isinstance(key, int) and key < len(parent)
            if in_dict or in_list:
                parent = parent[key]
            else:
                parent = None
                break
        if parent is None:
            continue
        key = path[-1]
        value = draw(
            st.sampled_from([0, -1, 1, 64, 255, 256, 512, 1 << 40, "", "FP16", [], {}, None]) | JSON_VALUES
        )
        if isinstance(parent, dict):
            if draw(st.booleans()):
                parent.pop(key, None)
            else:
                parent[key] = value
        elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
            parent[key] = value
    head = json.dumps(doc).encode()
    headers: dict[str, str] = {}
    body = head
    if binary:
        payload = np.full((rows, 64), 0.5, dtype=np.float32).tobytes()
        cut = draw(st.sampled_from([len(payload), len(payload), 0, 4, len(payload) - 4, len(payload) + 4]))
        body += (payload + b"\0" * 8)[:cut]
        length = draw(
            st.sampled_from([str(len(head))] * 3 + [str(len(head) - 1), "0", str(len(body) + 1), ""])
        )
        if length:  # "": the header is missing
            headers["Inference-Header-Content-Length"] = length
    return body, headers


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    kind = draw(st.integers(0, 5))
    if kind >= 4:
        return draw(mutated())
    headers: dict[str, str] = {}
    if kind == 0:
        return draw(st.binary(max_size=300)), headers
    doc: Any
    if kind == 1:
        doc = draw(JSON_VALUES)
    else:
        doc = {"inputs": draw(st.lists(tensors(), max_size=3) | JSON_VALUES)}
        if draw(st.booleans()):
            doc["outputs"] = draw(
                st.lists(st.fixed_dictionaries({"name": JSON_VALUES}), max_size=2) | JSON_VALUES
            )
        if draw(st.booleans()):
            doc["id"] = draw(JSON_VALUES)
        if draw(st.booleans()):
            doc["parameters"] = draw(JSON_VALUES)
    head = json.dumps(doc).encode()
    body = head
    if kind == 3:
        body += draw(st.binary(max_size=600))
        headers["Inference-Header-Content-Length"] = draw(
            st.sampled_from([str(len(head)), str(len(head) - 1), "-1", "x", str(len(body) + 5)])
        )
    return body, headers


def post(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn.request("POST", "/v2/models/digits/infer", body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


@settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=bodies())
def test_malformed_requests_get_4xx(server: ServerThread, case: tuple[bytes, dict[str, str]]) -> None:
    body, headers = case
    host, port = server.url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        status, raw = post(conn, body, headers)
    finally:
        conn.close()
    assert status < 500, raw
    if status != 200:
        assert 400 <= status < 500
        assert isinstance(json.loads(raw)["error"], str)


def test_server_healthy_after_fuzzing(server: ServerThread) -> None:
    host, port = server.url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    x = np.ones((2, 64), dtype=np.float32)
    doc = {"inputs": [{"name": INPUT, "shape": [2, 64], "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    status, raw = post(conn, json.dumps(doc).encode(), {})
    assert status == 200
    assert np.allclose(
        np.array(json.loads(raw)["outputs"][0]["data"]).reshape(2, 10).sum(axis=1), 1.0, atol=1e-5
    )
    conn.request("GET", "/v2/health/ready")
    assert conn.getresponse().status == 200
    conn.close()
    assert server.server is not None
    assert server.server.dataplane.inflight == 0
