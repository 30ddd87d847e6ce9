"""HTTP/1.1 on asyncio + httptools (llhttp, the parser uvicorn uses): one `HttpProtocol` per connection.

Why hand-written rather than an ASGI server: for a 7 µs model the HTTP and JSON path is the whole cost;
`benchmarks/serving_bench.py` measures this protocol against uvicorn's httptools protocol serving the
same data plane (docs/serving.md has the figures and the decision). What it implements, as RFC 9110/9112
and uvicorn's `httptools_impl.py` do:

- keep-alive and pipelining: answers go out in request order; reading pauses while 64 requests wait,
  and while the socket's write buffer is above its high-water mark (`pause_writing`), so a client that
  sends and never reads cannot grow the server's memory;
- HEAD gets the GET's headers and no body, whatever the route answers (404 and 405 too);
- `Expect: 100-continue` is answered only once every earlier response of the connection is out;
- HTTP/1.0 keep-alive is confirmed with `Connection: keep-alive`, otherwise HTTP/1.0 closes;
- an `Upgrade` request (h2c, websocket) is served as plain HTTP/1.1, the upgrade ignored (RFC 9110 7.8);
- `CONNECT` (a tunnel, which we do not open) gets its answer and a close; what follows it is not read;
- absolute-form targets (`POST http://host/v2/...`) route like origin-form ones;
- `Date` on every response; malformed requests answered 400 and logged;
- limits, answered then closed: body > max_body_bytes 413, request line > max_header_bytes 414, head >
  max_header_bytes or > max_headers headers 431, head not complete within header_timeout or a body that
  pauses longer than body_timeout 408.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

import httptools

from trtforge_runtime.serve.rest import PROTOCOL, Answer, Headers, RestApp, error

log = logging.getLogger("trtforge.serve.http")

LINGER_SECONDS = 2.0  # how long a refused request's remaining body is read and discarded
MAX_PIPELINED = 64  # queued requests per connection before reading pauses
_STATUS = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_HOP_BY_HOP = {b"connection", b"upgrade", b"http2-settings", b"keep-alive"}
_PAUSE_PIPELINE, _PAUSE_WRITE = 1, 2


class _Date:
    """The IMF-fixdate of the current second, formatted once per second."""

    value = b""
    until = 0.0

    @classmethod
    def get(cls) -> bytes:
        now = time.time()
        if now >= cls.until:
            cls.until = float(int(now) + 1)
            cls.value = formatdate(int(now), usegmt=True).encode()
        return cls.value


def response_bytes(answer: Answer, *, keep_alive: bool, http10: bool = False, head: bool = False) -> bytes:
    body = answer.body
    out = [
        _STATUS.get(answer.code) or b"HTTP/1.1 %d Unknown\r\n" % answer.code,
        b"date: ",
        _Date.get(),
        b"\r\ncontent-type: ",
        answer.content_type,
        b"\r\ncontent-length: %d\r\n" % len(body),
    ]
    if not keep_alive:
        out.append(b"connection: close\r\n")
    elif http10:
        out.append(b"connection: keep-alive\r\n")
    if answer.headers:
        for k, v in answer.headers:
            out += [k, b": ", v, b"\r\n"]
    out.append(b"\r\n")
    if not head:
        out.append(body)
    return b"".join(out)


@dataclass(slots=True)
class Request:
    method: bytes
    path: str
    body: bytes
    header_length: bytes | None  # Inference-Header-Content-Length
    keep_alive: bool
    http10: bool
    answer: Answer | None  # routed at parse time; None: an inference request


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection."""

    def __init__(self, app: RestApp) -> None:
        self.app = app
        self.limits = app.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.queue: collections.deque[Request] = collections.deque()
        self.worker: asyncio.Task[None] | None = None
        self.last_activity = 0.0
        self.discarding = False
        self._paused = 0  # why reading is paused: _PAUSE_PIPELINE | _PAUSE_WRITE
        self._writable: asyncio.Future[None] | None = None  # set while the write buffer is full
        self._continue_pending = False  # a 100 Continue owed once earlier responses are out
        self.in_message = False
        self.in_head = False
        self.eof = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.body: list[bytes] = []
        self.size = 0
        self.header_length: bytes | None = None
        self.headers: Headers = []
        self.head_bytes = 0  # exact: request line + headers seen
        self.head_chunks = 0  # coarse: bytes of later reads while the head is still incomplete
        self.began_in_chunk = True
        self.message_started = 0.0
        self.too_large = False
        self.expect_continue = False
        self.upgrade = False
        self.method = b""
        self.http10 = False

    # ----------------------------------------------------------------------------------- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        self.last_activity = time.monotonic()
        self.app.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.connections.discard(self)
        self.transport = None
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
        self.queue.clear()
        self._wake_writer()

    def eof_received(self) -> bool:
        """The client closed its sending side: answer what it sent in full, then close."""
        self.eof = True
        return not self.idle  # False closes the transport now

    def pause_writing(self) -> None:
        """The socket's write buffer passed its high-water mark: stop reading (and so answering)."""
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()
        self._pause(_PAUSE_WRITE)

    def resume_writing(self) -> None:
        self._wake_writer()
        self._resume(_PAUSE_WRITE)

    def _wake_writer(self) -> None:
        if self._writable is not None:
            if not self._writable.done():
                self._writable.set_result(None)
            self._writable = None

    def _pause(self, why: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= why

    def _resume(self, why: int) -> None:
        was = self._paused
        self._paused &= ~why
        if was and not self._paused and self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if self.discarding:
            return
        self._feed(data)
        if self.in_head and self.transport is not None:
            if self.began_in_chunk:
                self.began_in_chunk = False
            else:
                self.head_chunks += len(data)
            if max(self.head_bytes, self.head_chunks) > self.limits.max_header_bytes:
                self._head_too_large()

    def _feed(self, data: bytes) -> None:
        while True:  # a loop, not recursion: a chunk may hold thousands of pipelined upgrade requests
            try:
                self.parser.feed_data(data)
                return
            except httptools.HttpParserUpgrade as exc:
                if self.method == b"CONNECT":
                    # llhttp ends every CONNECT request this way, Upgrade header or not: replayed, it would
                    # end the same way again, forever. What follows a CONNECT is tunnel data, not HTTP
                    # (RFC 9110 9.3.6): the request has its answer (405, then a close); the rest is ignored.
                    self.discarding = True
                    return
                data = self._without_upgrade(data[exc.args[0] :] if exc.args else b"")
            except httptools.HttpParserError as exc:
                if not self.too_large and self.transport is not None:
                    self._fail(400, f"malformed HTTP request: {exc}")
                return

    def _without_upgrade(self, rest: bytes) -> bytes:
        """Serve an `Upgrade` request as plain HTTP/1.1 (the upgrade is optional for the server).

        llhttp stops at the end of an upgrade request's head and treats what follows as the new
        protocol's bytes; we do not switch protocols, so the same head minus its upgrade headers goes
        through a fresh parser followed by those bytes (the body, then later pipelined requests).
        """
        version = b"1.0" if self.http10 else b"1.1"
        head = [self.method, b" ", self.url, b" HTTP/", version, b"\r\n"]
        for name, value in self.headers:
            if name.lower() not in _HOP_BY_HOP:
                head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        self.parser = httptools.HttpRequestParser(self)
        return b"".join(head) + rest

    @property
    def idle(self) -> bool:
        return not self.queue and (self.worker is None or self.worker.done())

    def close_if_idle(self, idle_for: float = 0.0) -> bool:
        """Close when no request is queued, answered or partly read and the connection has been quiet
        for `idle_for` seconds; True when it is (now) closed."""
        if self.transport is None:
            return True
        if self.idle and not self.in_message and time.monotonic() - self.last_activity >= idle_for:
            self.transport.close()
            self.transport = None
            return True
        return False

    def check_timeouts(self, now: float, idle_timeout: float) -> None:
        """Called by the app's sweeper about once a second."""
        if self.transport is None or self.discarding:
            return
        limits = self.limits
        if self.in_message and not self._paused:
            if self.in_head and now - self.message_started > limits.header_timeout:
                self._fail(408, f"request headers not received within {limits.header_timeout:g} s")
            elif not self.in_head and now - self.last_activity > limits.body_timeout:
                self._fail(408, f"request body stalled for more than {limits.body_timeout:g} s")
        elif idle_timeout > 0 and self.idle and now - self.last_activity > idle_timeout:
            self.close_if_idle()

    # ------------------------------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        self._reset()
        self.in_message = True
        self.in_head = True
        self.message_started = self.last_activity

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)
        if len(self.url) > self.limits.max_header_bytes:
            self._fail(414, f"request target longer than {self.limits.max_header_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_bytes += len(name) + len(value) + 4
        lower = name.lower()
        if lower == b"inference-header-content-length":
            self.header_length = value
        elif lower == b"content-length":
            try:
                too_large = int(value) > self.limits.max_body_bytes
            except ValueError:
                too_large = False  # the parser rejects it
            if too_large:
                self._too_large(int(value))
        elif lower == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True
        elif lower == b"upgrade":
            self.upgrade = True

    def on_headers_complete(self) -> None:
        self.in_head = False
        limits = self.limits
        if self.head_bytes > limits.max_header_bytes or len(self.headers) > limits.max_headers:
            self._head_too_large()
            return
        self.method = self.parser.get_method()
        self.http10 = self.parser.get_http_version() == "1.0"
        if self.expect_continue and not self.too_large and not self.http10 and self.transport is not None:
            if self.idle and self._writable is None:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            else:  # earlier responses first (RFC 9110 10.1.1: 100 precedes only its own final response)
                self._continue_pending = True

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            return
        self.size += len(body)
        if self.size > self.limits.max_body_bytes:
            self._too_large(self.size)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        self._continue_pending = False
        if self.too_large or self.transport is None or self.discarding:
            return
        if self.upgrade and self.parser.should_upgrade():
            self.in_message = True  # completed again by the replay without the upgrade
            return
        path = self._path()
        if path is None:
            return
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        answer = self.app.route(self.method, path)
        keep_alive = self.parser.should_keep_alive() and self.method != b"CONNECT"  # no HTTP after a CONNECT
        request = Request(self.method, path, body, self.header_length, keep_alive, self.http10, answer)
        if answer is not None and self.idle and self._writable is None:
            self._write(request, answer)
            return
        self.queue.append(request)
        if len(self.queue) >= MAX_PIPELINED:
            self._pause(_PAUSE_PIPELINE)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._work())

    def _path(self) -> str | None:
        url = self.url
        if url[:1] == b"/":
            return url.partition(b"?")[0].decode("latin-1")
        if url == b"*":
            return "*"
        try:  # absolute-form (RFC 9112 3.2.2): route by its path
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            self._fail(400, f"malformed request target {url[:200]!r}")
            return None
        return (parsed.path or b"/").decode("latin-1")

    # ------------------------------------------------------------------------------------------- answers
    async def _work(self) -> None:
        app = self.app
        while self.queue and self.transport is not None:
            request = self.queue.popleft()
            if self._paused & _PAUSE_PIPELINE and len(self.queue) < MAX_PIPELINED // 2:
                self._resume(_PAUSE_PIPELINE)
            answer = request.answer
            if answer is None:
                try:
                    answer = await app.infer(request.path, request.body, request.header_length)
                except Exception as exc:  # never leave a client without an answer
                    log.exception("inference request failed")
                    answer = error(500, f"internal error: {type(exc).__name__}: {exc}")
            while self._writable is not None:
                await self._writable
            if self.transport is None:
                return
            if not self._write(request, answer):
                return
        if self.transport is None:
            return
        if self.eof:
            self.transport.close()
            self.transport = None
        elif self._continue_pending:
            self._continue_pending = False
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _write(self, request: Request, answer: Answer) -> bool:
        """Send one answer; False when the connection closes after it.

        While the server drains (`app.closing`, from SIGTERM on) every answer says `Connection: close`
        and the connection closes after it, so a keep-alive client reconnects (through the Service, to
        another endpoint) instead of having an idle connection closed under its next request. Requests
        already read (pipelined, or partly received) are still answered, each with the close, and the
        connection closes after the last.
        """
        transport = self.transport
        if transport is None:
            return False
        keep_alive = request.keep_alive and not self.app.closing
        transport.write(
            response_bytes(
                answer, keep_alive=keep_alive, http10=request.http10, head=request.method == b"HEAD"
            )
        )
        self.last_activity = time.monotonic()
        if keep_alive:
            return True
        if request.keep_alive and (self.queue or self.in_message):
            return True  # draining: answer what was already read before closing
        transport.close()
        self.transport = None
        return False

    def _too_large(self, size: int) -> None:
        if self.too_large:
            return
        self.too_large = True
        limit = self.limits.max_body_bytes
        self._fail(413, f"request body of {size} bytes exceeds the limit of {limit} bytes")

    def _head_too_large(self) -> None:
        limits = self.limits
        self._fail(
            431,
            f"request head exceeds {limits.max_header_bytes} bytes or {limits.max_headers} header fields",
        )

    def _fail(self, code: int, message: str) -> None:
        """Answer an unparseable, oversize or stalled request and close: the stream cannot be trusted.

        A lingering close: the answer goes out, our side shuts down for writing, and whatever the client
        still sends is discarded for a moment, so that it reads the answer instead of a connection reset.
        """
        transport = self.transport
        if transport is None:
            return
        log.warning("%s: %d %s", self.peer, code, message)
        self.app.dataplane.record("<unknown>", PROTOCOL, code)
        self.transport = None
        self.discarding = True
        self.queue.clear()
        transport.write(response_bytes(error(code, message), keep_alive=False))
        if self._paused:
            transport.resume_reading()  # keep reading (and discarding) so the client sees the answer
        if transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()
