"""Draining without losing a request (issue 10 item 8, issue 11): from SIGTERM on every answer says
`Connection: close`; an idle keep-alive connection is closed only once it has been quiet, never under a
request on its way; requests already read are answered before the batcher stops."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from raw_http import RawConnection
from serve_support import ServerThread, serve
from test_lifecycle import free_port, infer_body, wait_ready

INFER = "/v2/models/digits/infer"


def request_bytes(body: bytes | None = None) -> bytes:
    body = infer_body() if body is None else body
    head = f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def begin_shutdown(srv: ServerThread) -> Future[None]:
    assert srv.server is not None
    return asyncio.run_coroutine_threadsafe(srv.server.shutdown(), srv.loop)


def finish(srv: ServerThread, shutdown: Future[None]) -> None:
    shutdown.result(30)
    srv.loop.call_soon_threadsafe(srv.loop.stop)
    srv.thread.join(10)
    srv.loop.close()


def test_a_request_sent_right_after_a_keepalive_answer_is_answered_with_close(engine_dir: Path) -> None:
    srv = serve(engine_dir, shutdown_delay_seconds=0.0)
    with RawConnection(srv.url) as conn:
        conn.send(request_bytes())
        first = conn.read_response()
        assert first.status == 200 and "connection" not in first.headers  # a keep-alive answer
        shutdown = begin_shutdown(srv)  # SIGTERM while the client is between two requests
        time.sleep(0.05)  # the listener is closed by now (no shutdown delay)
        conn.send(request_bytes())  # the client's next request, already on its way
        second = conn.read_response()
        assert second.status == 200, second
        assert second.headers["connection"] == "close"
        assert conn.sock.recv(1) == b""  # then an orderly close (EOF), not a reset
    finish(srv, shutdown)


def test_during_the_delay_every_answer_closes_and_pipelined_requests_are_all_answered(
    engine_dir: Path,
) -> None:
    srv = serve(engine_dir, shutdown_delay_seconds=0.5)
    shutdown = begin_shutdown(srv)
    time.sleep(0.1)  # draining, still inside the delay: the listener accepts
    with RawConnection(srv.url) as conn:
        conn.send(request_bytes() + request_bytes() + request_bytes())
        answers = [conn.read_response() for _ in range(3)]
        assert [a.status for a in answers] == [200, 200, 200]
        assert all(a.headers["connection"] == "close" for a in answers)
        assert conn.sock.recv(1) == b""
    finish(srv, shutdown)


def test_a_partly_read_request_is_not_closed_and_the_batcher_waits_for_it(engine_dir: Path) -> None:
    srv = serve(engine_dir, shutdown_delay_seconds=0.0)
    with RawConnection(srv.url) as conn:
        data = request_bytes()
        conn.send(data[:60])  # half a request head
        time.sleep(0.1)
        shutdown = begin_shutdown(srv)
        time.sleep(1.6)  # longer than an idle connection is kept while draining
        assert not shutdown.done()  # the connection holds the drain open; the batcher still runs
        conn.send(data[60:])
        answer = conn.read_response()
        assert answer.status == 200, answer  # a stopped batcher would answer 503
        assert answer.headers["connection"] == "close"
        assert conn.sock.recv(1) == b""
    finish(srv, shutdown)


def test_an_idle_keepalive_connection_closes_during_the_drain(engine_dir: Path) -> None:
    srv = serve(engine_dir, shutdown_delay_seconds=0.0)
    with RawConnection(srv.url) as conn:
        conn.send(request_bytes())
        assert conn.read_response().status == 200
        started = time.monotonic()
        shutdown = begin_shutdown(srv)
        assert conn.closed_by_server(within=5.0)  # quiet for a while: closed, the drain goes on
        finish(srv, shutdown)
        assert 0.9 <= time.monotonic() - started < 5.0


# --------------------------------------------------------------------------- the reproducer, as a process
def closed_loop_client(port: int, stop_new: threading.Event, outcomes: list[str]) -> None:
    """A keep-alive client that sends its next request as soon as it has an answer and reconnects when
    told to close; once `stop_new` is set it opens no new connection (the endpoints no longer list the
    pod, so a real client's next connection goes to another one). Any request sent and not answered
    200 is a failure."""
    conn: http.client.HTTPConnection | None = None
    while True:
        if conn is None:
            if stop_new.is_set():
                return
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            try:
                conn.connect()
            except ConnectionRefusedError:
                return  # the listener closed: the client would reach another endpoint
        try:
            conn.request("POST", INFER, body=infer_body())
            resp = conn.getresponse()
            resp.read()
            outcomes.append(str(resp.status))
            if resp.getheader("connection") == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            outcomes.append(type(exc).__name__)
            conn.close()
            conn = None


# Before the fix: 3 of 7 runs lost requests (BrokenPipeError, ConnectionResetError) with two clients.
@pytest.mark.parametrize(("delay", "workers"), [(0.0, 1), (0.5, 1)] * 3 + [(0.5, 2)])
def test_closed_loop_keepalive_clients_lose_nothing_on_sigterm(
    engine_dir: Path, delay: float, workers: int
) -> None:
    port = free_port()
    env = dict(os.environ, TRTFORGE_SHUTDOWN_DELAY_SECONDS=str(delay), TRTFORGE_WORKERS=str(workers))
    cmd = [sys.executable, "-m", "trtforge_runtime.cli", "serve", "--engine", str(engine_dir)]
    proc = subprocess.Popen([*cmd, "--port", str(port), "--grpc-port", "0"], env=env, stderr=subprocess.PIPE)
    outcomes: list[str] = []
    stop_new = threading.Event()
    try:
        wait_ready(port, proc)
        clients = [
            threading.Thread(target=closed_loop_client, args=(port, stop_new, outcomes)) for _ in range(2)
        ]
        for t in clients:
            t.start()
        time.sleep(0.7)
        proc.send_signal(signal.SIGTERM)
        time.sleep(delay / 2)  # endpoints drop the pod within the delay
        stop_new.set()
        for t in clients:
            t.join(30)
        assert proc.wait(30) == 0
    finally:
        stop_new.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    failed = [o for o in outcomes if o != "200"]
    assert len(outcomes) > 20 and not failed, (failed, len(outcomes))
