"""A full batching queue, seen from a client: 503 over HTTP and UNAVAILABLE over gRPC, at once.

The real `trtforge serve` process (REST and gRPC on sockets, batcher, onnxruntime backend in its worker
thread) with `maxQueueSize` 1: one request holds the backend, a second waits in the queue, and a third
must be refused at once with the overload answer — 503 over HTTP, UNAVAILABLE over gRPC, as Triton
answers "Exceeds maximum queue size" (clients may retry both) — while the first two still succeed and the
server keeps serving afterwards. The backend is made slow for marked inputs only (a pixel value of 7.5).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
from serve_support import INPUT, make_engine_dir
from tritonclient.utils import InferenceServerException

SLOW = 7.5
HOLD_SECONDS = 2.0
SLOW_SERVER = f"""
import sys, time
from trtforge_runtime.cli import main
from trtforge_runtime.serve.backends.onnxruntime import OnnxRuntimeBackend
real = OnnxRuntimeBackend.infer
def infer(self, inputs):
    if (inputs["{INPUT}"] == {SLOW}).any():
        time.sleep({HOLD_SECONDS})
    return real(self, inputs)
OnnxRuntimeBackend.infer = infer
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body(value: float = 0.25) -> bytes:
    return json.dumps(
        {"inputs": [{"name": INPUT, "shape": [1, 64], "datatype": "FP32", "data": [value] * 64}]}
    ).encode()


def post(port: int, value: float = 0.25) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v2/models/digits/infer", body=body(value))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Process:
    def __init__(self, engine: Path) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        self.log = engine.parent / "serve.log"
        env = {
            **os.environ,
            "TRTFORGE_BACKEND": "onnxruntime",
            "TRTFORGE_BACKEND_THREAD": "true",
            "TRTFORGE_MAX_QUEUE_SIZE": "1",
            "TRTFORGE_WORKERS": "1",  # one process, so the slow backend patched here is the one serving
            "TRTFORGE_MAX_BATCH_SIZE": "1",
            "TRTFORGE_REQUEST_TIMEOUT_SECONDS": "30",
            "PYTHONUNBUFFERED": "1",
        }
        cmd = [sys.executable, "-c", SLOW_SERVER, "serve", "--engine", str(engine), "--name", "digits"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--grpc-port", str(self.grpc_port)]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(self.port, "/v2/health/ready")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"trtforge serve did not become ready:\n{self.log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = Process(make_engine_dir(tmp_path_factory.mktemp("overload") / "digits"))
    yield proc
    proc.stop()


def in_thread(fn: Callable[[], tuple[int, bytes]]) -> tuple[threading.Thread, list[tuple[int, bytes]]]:
    out: list[tuple[int, bytes]] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def fill_queue(server: Process) -> list[tuple[threading.Thread, list[tuple[int, bytes]]]]:
    """One request running in the (held) backend, one waiting in the queue: the queue is full."""
    running = in_thread(lambda: post(server.port, SLOW))
    time.sleep(0.5)  # taken off the queue, held in the backend thread
    queued = in_thread(lambda: post(server.port))
    time.sleep(0.3)  # queued behind it
    return [running, queued]


def assert_both_answered(pending: list[tuple[threading.Thread, list[tuple[int, bytes]]]]) -> None:
    for thread, out in pending:
        thread.join(30)
        assert out and out[0][0] == 200, out
        assert len(json.loads(out[0][1])["outputs"][0]["data"]) == 10


def test_full_queue_is_503_over_http_at_once(server: Process) -> None:
    pending = fill_queue(server)
    started = time.monotonic()
    status, answer = post(server.port)
    assert time.monotonic() - started < HOLD_SECONDS / 2  # refused, not queued behind the slow one
    assert status == 503
    error = json.loads(answer)["error"]
    assert "overloaded" in error and "maxQueueSize 1" in error
    assert_both_answered(pending)
    assert post(server.port)[0] == 200  # and it serves again
    metrics = get(server.port, "/metrics")[1].decode()
    assert 'trtforge_requests_total{code="503",model="digits",protocol="rest"}' in metrics


def test_full_queue_is_unavailable_over_grpc_at_once(server: Process) -> None:
    client = tc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    x = np.full((1, 64), 0.25, dtype=np.float32)
    inp = tc.InferInput(INPUT, [1, 64], "FP32")
    inp.set_data_from_numpy(x)
    try:
        pending = fill_queue(server)
        started = time.monotonic()
        with pytest.raises(InferenceServerException) as exc:
            client.infer("digits", [inp])
        assert time.monotonic() - started < HOLD_SECONDS / 2
        assert exc.value.status() == "StatusCode.UNAVAILABLE", (exc.value.status(), exc.value.message())
        assert "overloaded" in (exc.value.message() or "")
        assert_both_answered(pending)
        result = client.infer("digits", [inp])  # and it serves again
        assert result.as_numpy("probabilities").shape == (1, 10)
    finally:
        client.close()
