"""`trtforge serve --workers 2`: both processes serve one port, /metrics is the pod's total whichever
worker answers, readiness waits for every worker, and SIGTERM drains all of them."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_lifecycle import SLOW, free_port, get, infer_body, trtforge, wait_ready
from trtforge_runtime.serve.workers import cgroup_cpu_limit, default_workers

# Loaded by each spawned worker at interpreter start-up: the same slow backend as test_lifecycle's.
SITECUSTOMIZE = f"""
import os, time
if os.environ.get("TRTFORGE_TEST_SLOW"):
    from trtforge_runtime.serve.backends.onnxruntime import OnnxRuntimeBackend
    real = OnnxRuntimeBackend.infer
    def infer(self, inputs):
        if (inputs["pixels"] == {SLOW}).any():
            time.sleep(float(os.environ["TRTFORGE_TEST_SLOW"]))
        return real(self, inputs)
    OnnxRuntimeBackend.infer = infer
"""


def children(pid: int) -> list[int]:
    """The worker processes of a server (not multiprocessing's resource tracker)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def post(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("POST", "/v2/models/digits/infer", body=body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


@pytest.fixture
def two_workers(engine_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        TRTFORGE_TEST_SLOW="1.0",
        TRTFORGE_BACKEND_THREAD="true",
        TRTFORGE_SHUTDOWN_DELAY_SECONDS="0.3",
    )
    cmd = [*trtforge(), "serve", "--engine", str(engine_dir), "--port", str(port), "--grpc-port", "0"]
    proc = subprocess.Popen([*cmd, "--workers", "2"], env=env, stderr=subprocess.PIPE)
    try:
        wait_ready(port, proc, timeout=120)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_metrics_are_the_pods_total_whichever_worker_answers(two_workers) -> None:  # type: ignore[no-untyped-def]
    port, proc = two_workers
    workers = children(proc.pid)
    assert len(workers) == 2
    for _ in range(40):  # fresh connections: the kernel spreads them over both workers
        assert post(port, infer_body()) == 200
    totals = set()
    for _ in range(12):  # each scrape on a fresh connection, so different workers answer
        text = get(f"127.0.0.1:{port}", "/metrics")[1].decode()
        totals.add(metric(text, "trtforge_requests_total", 'code="200",model="digits",protocol="rest"'))
        assert metric(text, "trtforge_inflight_requests", 'model="digits"') == 0
        assert metric(text, "trtforge_model_ready", 'model="digits"') == 1
        assert 'backend="onnxruntime"' in text  # the backend info of the answering worker
    assert totals == {40.0}
    # both workers served: each has its own batcher, so the batch counts add up across two processes
    text = get(f"127.0.0.1:{port}", "/metrics")[1].decode()
    assert metric(text, "trtforge_batch_size_count", 'model="digits"') >= 40


def test_sigterm_drains_every_worker(two_workers) -> None:  # type: ignore[no-untyped-def]
    port, proc = two_workers
    workers = children(proc.pid)
    assert len(workers) == 2
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(post(port, infer_body(1, SLOW)))) for _ in range(6)
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)  # in flight on both workers (six connections spread by the kernel)
    inflight = metric(
        get(f"127.0.0.1:{port}", "/metrics")[1].decode(), "trtforge_inflight_requests", 'model="digits"'
    )
    assert inflight >= 2  # the pod's total, summed over the workers
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    assert get(f"127.0.0.1:{port}", "/v2/health/ready")[0] == 503
    for t in threads:
        t.join(30)
    assert statuses == [200] * 6
    assert proc.wait(30) == 0
    assert not any(alive(pid) for pid in workers)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "stopping 2 workers" in stderr and stderr.count("stopped") >= 2


def test_default_workers_follow_the_cgroup_cpu_limit(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.5
    usable = len(os.sched_getaffinity(0))
    assert default_workers(tmp_path) == min(usable, 2)
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert default_workers(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None and default_workers(tmp_path) == usable
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_limit(v1) == 3.0
    assert sys.platform != "linux" or default_workers(Path("/nonexistent")) == usable


def test_workers_do_not_outlive_a_killed_parent(engine_dir: Path) -> None:
    port = free_port()
    cmd = [*trtforge(), "serve", "--engine", str(engine_dir), "--port", str(port), "--grpc-port", "0"]
    proc = subprocess.Popen([*cmd, "--workers", "2"], stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc, timeout=120)
        workers = children(proc.pid)
        assert len(workers) == 2
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "workers still running after the parent was killed"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
