"""SIGTERM under load (a rollout or scale-down): not ready at once, keep serving through the shutdown delay
(old and new connections alike), then drain what is in flight and exit 0."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from test_lifecycle import SLOW, SLOW_SERVER, free_port, get, infer_body, wait_ready

DELAY = 1.5


def test_sigterm_under_load_serves_through_the_delay_then_drains(engine_dir: Path) -> None:
    port = free_port()
    env = dict(
        os.environ,
        TRTFORGE_BACKEND_THREAD="true",
        TRTFORGE_SHUTDOWN_DELAY_SECONDS=str(DELAY),
        TRTFORGE_WORKERS="1",
    )
    cmd = [sys.executable, "-c", SLOW_SERVER, "1.0"]
    cmd += ["serve", "--engine", str(engine_dir), "--port", str(port), "--grpc-port", "0"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    results: list[tuple[float, str, int | str]] = []  # (start time, kind, status or error)
    stop = threading.Event()

    def fresh_connections() -> None:  # a client that opens a connection per request
        while not stop.is_set():
            started = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("POST", "/v2/models/digits/infer", body=infer_body())
                resp = conn.getresponse()
                resp.read()
                results.append((started, "fresh", resp.status))
                conn.close()
            except OSError as exc:
                results.append((started, "fresh", type(exc).__name__))
            time.sleep(0.02)

    def keepalive() -> None:  # a client that reuses one connection, reconnecting when told to close
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            started = time.monotonic()
            try:
                conn.request("POST", "/v2/models/digits/infer", body=infer_body())
                resp = conn.getresponse()
                resp.read()
                results.append((started, "keepalive", resp.status))
                if resp.getheader("connection") == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                results.append((started, "keepalive", type(exc).__name__))
                conn.close()
            time.sleep(0.02)

    slow: list[int] = []

    def slow_request() -> None:  # in flight when SIGTERM arrives, finishes during the drain
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("POST", "/v2/models/digits/infer", body=infer_body(1, SLOW))
        slow.append(conn.getresponse().status)

    try:
        wait_ready(port, proc)
        threads = [threading.Thread(target=f) for f in (fresh_connections, fresh_connections, keepalive)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        slow_thread = threading.Thread(target=slow_request)
        slow_thread.start()
        time.sleep(0.6 + DELAY - 1.0)  # the slow request ends after the delay: it is drained
        sigterm = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        exit_times: list[float] = []
        waiter = threading.Thread(target=lambda: (proc.wait(30), exit_times.append(time.monotonic())))
        waiter.start()
        not_ready_after = None
        while time.monotonic() - sigterm < DELAY - 0.2:  # during the delay
            if get(f"127.0.0.1:{port}", "/v2/health/ready")[0] == 503:
                not_ready_after = time.monotonic() - sigterm
                break
            time.sleep(0.01)
        assert not_ready_after is not None  # not ready during the delay, while it still serves
        assert get(f"127.0.0.1:{port}", "/v2/health/live")[0] == 200  # still answering meanwhile
        time.sleep(DELAY + 1.0)
        stop.set()
        for t in threads:
            t.join(20)
        slow_thread.join(20)
        waiter.join(30)
        assert proc.returncode == 0
        exited = exit_times[0] - sigterm
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert slow == [200], stderr
    before = [r for r in results if r[0] < sigterm]
    during = [r for r in results if sigterm <= r[0] < sigterm + DELAY - 0.2]
    assert before and all(r[2] == 200 for r in before), before
    assert {r[1] for r in during} == {"fresh", "keepalive"}, during  # both kinds kept coming
    assert all(r[2] == 200 for r in during), during  # nothing dropped while endpoints update
    after = [r for r in results if r[0] > sigterm + DELAY + 0.3 and r[1] == "fresh"]
    assert after and all(r[2] == "ConnectionRefusedError" for r in after), after  # listener closed
    assert DELAY <= exited < DELAY + 30, exited  # not before the delay (the upper bound: no hang)
    assert "SIGTERM: not ready; serving 1.5 s more" in stderr and "stopped" in stderr


def test_in_a_pod_the_shutdown_delay_defaults_to_five_seconds() -> None:
    from trtforge_runtime.serve.settings import ServeSettings

    pod = ServeSettings.from_sources(
        None, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "TRTFORGE_ENGINE_DIR": "/e"}
    )
    assert pod.shutdown_delay_seconds == 5.0
    here = ServeSettings.from_sources(None, env={"TRTFORGE_ENGINE_DIR": "/e"})
    assert here.shutdown_delay_seconds == 0.0  # `trtforge local`, tests: Ctrl-C stops at once
    tuned = ServeSettings.from_sources(
        None,
        env={
            "KUBERNETES_SERVICE_HOST": "x",
            "TRTFORGE_SHUTDOWN_DELAY_SECONDS": "2",
            "TRTFORGE_ENGINE_DIR": "/e",
        },
    )
    assert tuned.shutdown_delay_seconds == 2.0
