"""HTTP/1.1 behaviour of the REST front end, spoken as raw bytes on a socket (issue 13's ten defects),
and one pipelined connection checked by an independent parser (h11)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import h11
import pytest
from raw_http import RawConnection, request
from serve_support import INPUT, ServerThread, serve

INFER = "/v2/models/digits/infer"


def infer_body(request_id: str = "r") -> bytes:
    doc = {
        "id": request_id,
        "inputs": [{"name": INPUT, "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}],
    }
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def strict(engine_dir: Path) -> Iterator[ServerThread]:
    """A server with short read deadlines (so the timeout tests take a second, not thirty)."""
    srv = serve(engine_dir, header_timeout_seconds=1.0, body_timeout_seconds=1.0, max_header_bytes=4096)
    yield srv
    srv.stop()


def still_serving(server: ServerThread) -> None:
    with RawConnection(server.url) as conn:
        conn.send(request("POST", INFER, infer_body()))
        resp = conn.read_response()
        assert resp.status == 200 and len(json.loads(resp.body)["outputs"][0]["data"]) == 10


# 1 ------------------------------------------------------------------------------------------------
def test_head_never_gets_a_body_so_keepalive_stays_in_sync(server: ServerThread) -> None:
    with RawConnection(server.url) as conn:
        conn.send(
            request("HEAD", "/nothing")
            + request("HEAD", INFER)
            + request("HEAD", "/v2/health/ready")
            + request("GET", "/v2/health/live")
        )
        missing = conn.read_response(head=True)
        assert missing.status == 404 and int(missing.headers["content-length"]) > 0
        wrong_method = conn.read_response(head=True)
        assert wrong_method.status == 405 and wrong_method.headers["allow"] == "POST"
        ready = conn.read_response(head=True)
        assert ready.status == 200 and ready.headers["content-length"] == str(len(b'{"ready":true}'))
        live = conn.read_response()  # would start inside a stray body if a HEAD answer had one
        assert live.status == 200 and live.body == b'{"live":true}'


# 2 ------------------------------------------------------------------------------------------------
def test_upgrade_requests_are_served_as_http11_with_one_answer_each(server: ServerThread) -> None:
    h2c = {
        "Connection": "Upgrade, HTTP2-Settings",
        "Upgrade": "h2c",
        "HTTP2-Settings": "AAMAAABkAAQCAAAAAAIAAAAA",
    }
    with RawConnection(server.url) as conn:
        conn.send(request("GET", "/v2/health/ready", headers=h2c))
        conn.send(request("POST", INFER, infer_body("up"), headers=h2c) + request("GET", "/v2/health/live"))
        assert conn.read_response().status == 200
        answer = conn.read_response()
        assert answer.status == 200 and json.loads(answer.body)["id"] == "up"
        assert conn.read_response().status == 200
        websocket = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
        conn.send(request("GET", "/v2/health/live", headers=websocket))
        assert conn.read_response().status == 200
        assert not conn.closed_by_server(within=0.3)  # no second answer, no close


# 3 ------------------------------------------------------------------------------------------------
def test_http10_keepalive_is_confirmed_and_plain_http10_closes(server: ServerThread) -> None:
    with RawConnection(server.url) as conn:
        conn.send(b"GET /v2/health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = conn.read_response()
        assert first.status == 200 and first.headers["connection"].lower() == "keep-alive"
        conn.send(b"GET /v2/health/ready HTTP/1.0\r\n\r\n")
        second = conn.read_response()
        assert second.status == 200 and second.headers["connection"] == "close"
        assert conn.closed_by_server(within=2.0)


# 4 ------------------------------------------------------------------------------------------------
def test_a_client_that_never_reads_cannot_grow_server_memory(server: ServerThread) -> None:
    assert server.server is not None
    rest = server.server.rest
    one = request("GET", "/v2/models/digits")  # a larger answer than the request
    with RawConnection(server.url) as conn:
        conn.sock.setblocking(False)
        sent, stalled_since = 0, None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # send until the server stops reading for a second
            try:
                sent += conn.sock.send(one * 64)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.0:
                    break
                time.sleep(0.01)
        assert stalled_since is not None, "the server kept reading a client that never reads"
        buffered = [c.transport.get_write_buffer_size() for c in list(rest.connections) if c.transport]
        assert max(buffered) < 1 << 20, buffered  # bounded by the transport's high-water mark
        assert sent < 64 << 20
        # what was sent is still answered, in order, once the client reads
        conn.sock.setblocking(True)
        conn.sock.settimeout(20)
        for _ in range(2000):
            answer = conn.read_response()
            assert answer.status == 200 and json.loads(answer.body)["name"] == "digits"


# 5 ------------------------------------------------------------------------------------------------
def test_100_continue_follows_the_earlier_pipelined_response(server: ServerThread) -> None:
    body = infer_body("second")
    with RawConnection(server.url) as conn:
        head = request("POST", INFER, body, headers={"Expect": "100-continue"})[: -len(body)]
        conn.send(request("POST", INFER, infer_body("first")) + head)
        first = conn.read_response()
        assert first.status == 200 and json.loads(first.body)["id"] == "first"
        assert conn.read_response().status == 100
        conn.send(body)
        second = conn.read_response()
        assert second.status == 200 and json.loads(second.body)["id"] == "second"


# 6 ------------------------------------------------------------------------------------------------
def test_absolute_form_targets_route_like_origin_form(server: ServerThread) -> None:
    with RawConnection(server.url) as conn:
        conn.send(request("POST", f"http://{server.url}{INFER}?x=1", infer_body("abs")))
        answer = conn.read_response()
        assert answer.status == 200 and json.loads(answer.body)["id"] == "abs"
        conn.send(request("GET", "http://example.com/v2/health/ready"))
        assert conn.read_response().status == 200


# 7 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v2/health/ready", "GET, HEAD"),
        ("POST", "/v2/health/live", "GET, HEAD"),
        ("DELETE", "/v2/models/digits", "GET, HEAD"),
        ("POST", "/v2/models/digits/versions/1/ready", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
        ("GET", INFER, "POST"),
        ("PUT", "/v2/models/digits/versions/1/infer", "POST"),
    ],
)
def test_wrong_method_on_a_known_path_is_405_with_allow(
    server: ServerThread, method: str, path: str, allow: str
) -> None:
    with RawConnection(server.url) as conn:
        conn.send(request(method, path, b"{}" if method in ("POST", "PUT") else b""))
        answer = conn.read_response()
        assert answer.status == 405 and answer.headers["allow"] == allow
        assert f"{method} not allowed on {path}" in json.loads(answer.body)["error"]
        conn.send(request("GET", "/nothing/here"))
        assert conn.read_response().status == 404


@pytest.mark.parametrize("target", [INFER, "digits.example:443", "/v2/health/ready"])
def test_connect_is_answered_once_and_the_connection_closed(server: ServerThread, target: str) -> None:
    """llhttp ends a CONNECT request as an upgrade; replaying it without its Upgrade headers ended it the
    same way again: the server answered 405 in a loop, gigabytes, on one connection (found by the fuzz
    test). What follows a CONNECT is tunnel data, not a request (RFC 9110 9.3.6): one answer, a close."""
    with RawConnection(server.url) as conn:
        conn.send(f"CONNECT {target} HTTP/1.1\r\nHost: digits.example:443\r\n\r\n".encode())
        conn.send(request("GET", "/v2/health/live"))  # bytes of the tunnel, not a request to answer
        answer = conn.read_response()
        assert answer.status in (400, 405)
        assert conn.closed_by_server()
        assert b"HTTP/1.1" not in conn.buffer  # nothing answered after it
    with RawConnection(server.url) as conn:  # and the server goes on serving
        conn.send(request("GET", "/v2/health/live"))
        assert conn.read_response().status == 200


# 8 ------------------------------------------------------------------------------------------------
def test_every_response_has_a_date_and_malformed_requests_are_logged(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trtforge.serve.http")
    with RawConnection(server.url) as conn:
        for raw in (
            request("GET", "/v2/health/live"),
            request("POST", INFER, infer_body()),
            request("GET", "/x"),
        ):
            conn.send(raw)
            answer = conn.read_response()
            age = time.time() - parsedate_to_datetime(answer.headers["date"]).timestamp()
            assert -1.5 < age < 5, answer.headers["date"]
    with RawConnection(server.url) as conn:
        conn.send(b"GET /v2/health/live HTTP/1.1\r\nHost x\r\n\r\n")
        assert conn.read_response().status == 400
    deadline = time.monotonic() + 5
    while not any("400 malformed HTTP request" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)


# 9 ------------------------------------------------------------------------------------------------
def test_a_request_head_that_never_completes_gets_408_and_a_close(strict: ServerThread) -> None:
    started = time.monotonic()
    with RawConnection(strict.url) as conn:
        conn.send(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Le")
        answer = conn.read_response()
        assert answer.status == 408 and "headers not received within 1 s" in json.loads(answer.body)["error"]
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_server()
    assert time.monotonic() - started < 4
    still_serving(strict)


def test_a_stalled_body_gets_408(strict: ServerThread) -> None:
    with RawConnection(strict.url) as conn:
        conn.send(b'POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"in')
        answer = conn.read_response()
        assert answer.status == 408 and "body stalled" in json.loads(answer.body)["error"]
    still_serving(strict)


def test_slow_but_steady_clients_are_not_cut_off(strict: ServerThread) -> None:
    body = infer_body("slow")
    raw = request("POST", INFER, body)
    head, rest = raw[: len(raw) - len(body)], body
    with RawConnection(strict.url) as conn:
        conn.send(head)
        step = len(rest) // 8 + 1
        for i in range(0, len(rest), step):  # 8 pieces, 0.25 s apart: 2 s in all > body_timeout
            time.sleep(0.25)
            conn.send(rest[i : i + step])
        assert conn.read_response().status == 200


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 5000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX-Slow: " + b"z" * 3000, 431),  # sent in pieces below: never completes
    ],
)
def test_oversize_heads_are_414_or_431(strict: ServerThread, raw: bytes, code: int) -> None:
    with RawConnection(strict.url) as conn:
        conn.send(raw)
        if not raw.endswith(b"\r\n\r\n"):
            for _ in range(6):  # later pieces of an endless header: counted without the header parsed
                time.sleep(0.01)
                conn.send(b"z" * 1000)
        answer = conn.read_response()
        assert answer.status == code, answer
        assert "error" in json.loads(answer.body)
        assert conn.closed_by_server()
    still_serving(strict)


def test_oversize_body_is_413_before_it_is_read(strict: ServerThread) -> None:
    limit = strict.settings.max_body_bytes
    with RawConnection(strict.url) as conn:
        conn.send(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (limit + 1)
        )
        answer = conn.read_response()
        assert answer.status == 413 and f"limit of {limit} bytes" in json.loads(answer.body)["error"]


# 10 -----------------------------------------------------------------------------------------------
def test_rest_health_and_metadata_come_from_the_data_plane(engine_dir: Path) -> None:
    srv = serve(engine_dir)
    try:
        assert srv.server is not None
        dp = srv.server.dataplane
        with RawConnection(srv.url) as conn:
            conn.send(request("GET", "/v2/health/ready"))
            assert conn.read_response().status == 200
            dp.peers_ready = lambda: False  # e.g. another worker process is still loading
            conn.send(request("GET", "/v2/health/ready"))
            assert conn.read_response().status == 503
            dp.peers_ready = None
            dp.server_name = "renamed"
            conn.send(request("GET", "/v2"))
            assert json.loads(conn.read_response().body)["name"] == "renamed"
            dp.begin_drain()
            conn.send(request("GET", "/v2/models/digits/ready"))
            assert conn.read_response().status == 503
    finally:
        srv.stop()


# h11 ----------------------------------------------------------------------------------------------
def test_pipelined_connection_checked_by_h11(server: ServerThread) -> None:
    """Every answer on one pipelined connection parses under h11, an HTTP/1.1 parser we did not write."""
    chunked = infer_body("chunked")
    plan: list[tuple[bytes, str, int, dict[str, str], bytes]] = [
        (b"GET", "/v2/health/live", 200, {}, b""),
        (b"HEAD", "/nothing", 404, {}, b""),
        (b"POST", INFER, 200, {}, infer_body("a")),
        (b"GET", INFER, 405, {}, b""),
        (b"HEAD", "/v2/health/ready", 200, {}, b""),
        (b"PUT", "/v2/health/ready", 405, {}, b"{}"),
        (b"GET", "/v2", 200, {}, b""),
        (b"POST", "/v2/models/nope/infer", 404, {}, infer_body()),
        (b"POST", INFER, 400, {}, b"{not json"),
        (b"GET", "http://example.com/v2/health/ready", 200, {}, b""),
        (b"POST", INFER, 200, {"Transfer-Encoding": "chunked"}, chunked),
        (b"GET", "/metrics", 200, {}, b""),
        (b"GET", "/v2/models/digits", 200, {"Upgrade": "h2c", "Connection": "Upgrade"}, b""),
        (b"POST", INFER, 200, {}, infer_body("last")),
    ]
    raw = b""
    for method, target, _, headers, body in plan:
        if headers.get("Transfer-Encoding") == "chunked":
            half = len(body) // 2
            framed = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
            raw += request(method.decode(), target, headers=headers) + framed
        else:
            raw += request(method.decode(), target, body, headers)
    client = h11.Connection(our_role=h11.CLIENT)
    with RawConnection(server.url) as conn:
        conn.send(raw)
        for method, target, code, _, _ in plan:
            client.send(h11.Request(method=method, target=target, headers=[("Host", "test")]))
            client.send(h11.EndOfMessage())
            response, body = None, b""
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    chunk = conn.sock.recv(65536)
                    assert chunk, f"closed before the answer to {method!r} {target}"
                    client.receive_data(chunk)
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            assert response is not None and response.status_code == code, (method, target, response)
            headers = dict(response.headers)
            assert b"date" in headers and headers[b"content-type"]
            if method == b"HEAD":
                assert body == b""
            else:
                assert int(headers[b"content-length"]) == len(body)
            if target == INFER and code == 200:
                assert json.loads(body)["id"] in ("a", "chunked", "last")
            client.start_next_cycle()
        assert client.their_state is h11.IDLE  # nothing stray after the last answer


def test_many_connections_stay_independent(server: ServerThread) -> None:
    """A stalled half-request on one connection does not delay answers on the others."""
    with RawConnection(server.url) as stalled:
        stalled.send(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        errors: list[BaseException] = []

        def client() -> None:
            try:
                still_serving(server)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not errors


def test_thousands_of_pipelined_upgrade_requests_in_one_read(server: ServerThread) -> None:
    h2c = {"Connection": "Upgrade", "Upgrade": "h2c"}
    with RawConnection(server.url) as conn:
        conn.send(request("GET", "/v2/health/live", headers=h2c) * 3000)
        for _ in range(3000):
            assert conn.read_response().status == 200
