"""Start-up and shutdown: reference-sample check, backend selection, SIGTERM drain, the CLI process."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from serve_support import INPUT, corrupt_reference, make_engine_dir, serve
from trtforge_runtime.errors import ArtifactError
from trtforge_runtime.serve import selection
from trtforge_runtime.serve.selection import select_backend


def get(url: str, path: str) -> tuple[int, bytes]:
    host, port = url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def infer_body(rows: int = 1, value: float = 0.25) -> bytes:
    return json.dumps(
        {"inputs": [{"name": INPUT, "shape": [rows, 64], "datatype": "FP32", "data": [value] * (64 * rows)}]}
    ).encode()


SLOW = 7.5  # a pixel value that makes the (real) onnxruntime backend take a while: requests stay in flight
SLOW_SERVER = f"""
import sys, time
from trtforge_runtime.cli import main
from trtforge_runtime.serve.backends.onnxruntime import OnnxRuntimeBackend
real = OnnxRuntimeBackend.infer
def infer(self, inputs):
    if (inputs["{INPUT}"] == {SLOW}).any():
        time.sleep(float(sys.argv[1]))
    return real(self, inputs)
OnnxRuntimeBackend.infer = infer
sys.exit(main(sys.argv[2:]))
"""


def slow_onnxruntime(
    monkeypatch: pytest.MonkeyPatch, seconds: float, finished: threading.Event | None = None
) -> None:
    """The same slow backend for an in-process server (`finished` is set when a slow batch ends)."""
    from trtforge_runtime.serve.backends.onnxruntime import OnnxRuntimeBackend

    real = OnnxRuntimeBackend.infer

    def infer(self: OnnxRuntimeBackend, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if (inputs[INPUT] == SLOW).any():
            time.sleep(seconds)
            if finished is not None:
                finished.set()
        return real(self, inputs)

    monkeypatch.setattr(OnnxRuntimeBackend, "infer", infer)


def test_disagreeing_reference_sample_keeps_model_not_ready(tmp_path: Path) -> None:
    engine = make_engine_dir(tmp_path / "digits")
    corrupt_reference(engine)
    srv = serve(engine)
    try:
        assert get(srv.url, "/v2/health/live")[0] == 200
        assert get(srv.url, "/v2/health/ready")[0] == 503
        status, body = get(srv.url, "/v2/models/digits/ready")
        assert status == 503 and json.loads(body)["ready"] is False
        host, port = srv.url.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/v2/models/digits/infer", body=infer_body())
        resp = conn.getresponse()
        error = json.loads(resp.read())["error"]
        assert resp.status == 503
        assert "disagrees with engine.json referenceSample" in error and "top-1 classes" in error
        metrics = get(srv.url, "/metrics")[1].decode()
        assert 'trtforge_reference_check_passed{backend="onnxruntime",model="digits"} 0.0' in metrics
        assert 'trtforge_model_ready{model="digits"} 0.0' in metrics
    finally:
        srv.stop()


def test_selection_prefers_the_engine_for_this_gpu(tmp_path: Path) -> None:
    engine = make_engine_dir(tmp_path / "digits")
    doc = json.loads((engine / "engine.json").read_text())
    everything = lambda name: True  # noqa: E731 - the libraries of a GPU node
    pick = select_backend(engine, doc, compute_capability="8.9", importable=everything)
    assert pick.kind == "tensorrt-rtx" and pick.path == engine / "engines/tensorrt-rtx-sm89.engine"
    assert "compute capability 8.9" in pick.reason
    pick = select_backend(engine, doc, compute_capability="9.0", importable=everything)
    assert pick.kind == "onnxruntime"
    assert "9.0" in pick.reason and "engines built for: 8.9" in pick.reason
    pick = select_backend(engine, doc, detect=lambda: (None, "nvidia-smi not found"))
    assert pick.kind == "onnxruntime" and "no NVIDIA GPU detected (nvidia-smi not found)" in pick.reason
    pick = select_backend(engine, doc, compute_capability="8.9", importable=lambda name: name != "pycuda")
    assert pick.kind == "onnxruntime" and "needs pycuda" in pick.reason
    with pytest.raises(ArtifactError, match="--backend tensorrt cannot run here"):
        select_backend(engine, doc, forced="tensorrt", compute_capability="8.9", importable=everything)
    pick = select_backend(engine, doc, forced="onnxruntime")
    assert pick.kind == "onnxruntime" and "forced" in pick.reason


def test_engine_that_fails_to_load_falls_back_to_onnxruntime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Pretend the GPU libraries are installed: the (fake) engine then fails to load for real
    # (no pycuda / no GPU here) and the server must fall back to onnxruntime and say why.
    monkeypatch.setattr(selection, "_module_importable", lambda name: True)
    engine = make_engine_dir(tmp_path / "digits")
    caplog.set_level("INFO", logger="trtforge")
    srv = serve(engine, compute_capability="8.9")
    try:
        assert get(srv.url, "/v2/health/ready")[0] == 200
        assert srv.server is not None and srv.server.loaded is not None
        assert srv.server.loaded.selection.kind == "onnxruntime"
        assert "tensorrt-rtx engine" in srv.server.loaded.selection.reason
        assert "failed to load" in srv.server.loaded.selection.reason
    finally:
        srv.stop()
    assert any("falling back to onnxruntime" in r.getMessage() for r in caplog.records)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if get(f"127.0.0.1:{port}", "/v2/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


def trtforge() -> list[str]:
    exe = shutil.which("trtforge")
    return [exe] if exe else [sys.executable, "-m", "trtforge_runtime.cli"]


def test_sigterm_drains_in_flight_requests_then_exits(engine_dir: Path) -> None:
    port = free_port()
    # marked requests hold the backend (in its worker thread, so the loop still sees SIGTERM) for 1.5 s
    env = dict(
        os.environ,
        TRTFORGE_BACKEND_THREAD="true",
        TRTFORGE_SHUTDOWN_DELAY_SECONDS="0.5",
        TRTFORGE_WORKERS="1",
    )
    cmd = [sys.executable, "-c", SLOW_SERVER, "1.5"]
    cmd += ["serve", "--engine", str(engine_dir), "--port", str(port), "--grpc-port", "0"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    try:
        wait_ready(port, proc)
        results: list[tuple[int, bytes]] = []

        def call() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            conn.request("POST", "/v2/models/digits/infer", body=infer_body(2, SLOW))
            resp = conn.getresponse()
            results.append((resp.status, resp.read()))
            conn.close()

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # the requests are in flight: running in the slow backend or queued behind it
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        assert get(f"127.0.0.1:{port}", "/v2/health/ready")[0] == 503  # not ready at once
        for t in threads:
            t.join(20)
        assert [r[0] for r in results] == [200, 200, 200], results
        assert all(len(json.loads(r[1])["outputs"][0]["data"]) == 20 for r in results)
        assert proc.wait(20) == 0
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert "SIGTERM: not ready" in stderr and "stopped" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_reports_a_missing_engine_folder(tmp_path: Path) -> None:
    out = subprocess.run(
        [*trtforge(), "serve", "--engine", str(tmp_path / "nope"), "--grpc-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == ArtifactError.exit_code
    assert "engine folder not found" in out.stderr


def test_request_timeout_is_504_and_the_server_keeps_serving(
    engine_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_batch_over = threading.Event()
    slow_onnxruntime(monkeypatch, 3.0, slow_batch_over)
    srv = serve(engine_dir, request_timeout_seconds=0.2, backend_thread=True)
    try:
        host, port = srv.url.split(":")
        batches = batch_count(get(srv.url, "/metrics")[1].decode())
        running, queued = (http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(2))
        running.request("POST", "/v2/models/digits/infer", body=infer_body(1, SLOW))  # times out running
        time.sleep(0.05)
        queued.request("POST", "/v2/models/digits/infer", body=infer_body())  # times out queued behind it
        for conn in (running, queued):
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert resp.status == 504
            assert "timed out after 0.2 s" in body["error"]
        assert not slow_batch_over.is_set()  # both answered while the slow batch still ran
        assert slow_batch_over.wait(30)  # the slow batch ends; the timed-out queued request is skipped
        queued.request("POST", "/v2/models/digits/infer", body=infer_body())
        resp = queued.getresponse()
        assert resp.status == 200 and len(json.loads(resp.read())["outputs"][0]["data"]) == 10
        metrics = get(srv.url, "/metrics")[1].decode()
        assert 'trtforge_requests_total{code="504",model="digits",protocol="rest"} 2.0' in metrics
        assert 'trtforge_requests_total{code="200",model="digits",protocol="rest"} 1.0' in metrics
        assert 'trtforge_inflight_requests{model="digits"} 0.0' in metrics
        assert batch_count(metrics) == batches + 2  # the slow one and the last one; the skipped one never ran
    finally:
        srv.stop()


def batch_count(metrics: str) -> float:
    prefix = 'trtforge_batch_size_count{model="digits"} '
    return next(float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix))


def test_idle_keepalive_connections_are_closed(engine_dir: Path) -> None:
    srv = serve(engine_dir, idle_timeout_seconds=0.3)
    try:
        host, port = srv.url.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            assert sock.recv(4096) == b""  # closed by the server once idle
            assert 0.2 < time.monotonic() - started < 30  # not before the idle time-out; no hang
        assert get(srv.url, "/v2/health/ready")[0] == 200
    finally:
        srv.stop()
