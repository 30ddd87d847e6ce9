"""The REST front end: HTTP/1.1 straight on asyncio + httptools (llhttp), no web framework in between.

Why hand-written: for a 7 µs model the HTTP and JSON path is the whole cost, and every layer between the
socket and the data plane (ASGI scope dicts, message callables, routing frameworks, pydantic models)
costs more than the model. This protocol parses with httptools (the parser uvicorn uses), answers health
and metadata synchronously in `data_received`, and starts one task per inference request.
It implements what V2 clients need: keep-alive, pipelining (answers stay in order), chunked request
bodies, `Expect: 100-continue`, a body limit answered with 413 before the body is read, and the binary
tensor data extension's `Inference-Header-Content-Length`. Every error is `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

import httptools

from trtforge_runtime.errors import InferenceError, TrtforgeError
from trtforge_runtime.serve import codec_binary, codec_json
from trtforge_runtime.serve.dataplane import DataPlane

log = logging.getLogger("trtforge.serve.rest")

PROTOCOL = "rest"
JSON = b"application/json"
OCTET = b"application/octet-stream"
LINGER_SECONDS = 2.0  # how long a refused request's remaining body is read and discarded
MAX_PIPELINED = 64  # queued requests per connection before reading pauses
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


@dataclass(slots=True)
class Request:
    method: bytes
    path: str
    body: bytes
    header_length: bytes | None  # Inference-Header-Content-Length
    keep_alive: bool


def _status_line(code: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (code, _REASONS.get(code, b"Unknown"))


def response_bytes(
    code: int,
    body: bytes,
    *,
    content_type: bytes = JSON,
    keep_alive: bool = True,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    head = [
        _status_line(code),
        b"content-type: ",
        content_type,
        b"\r\ncontent-length: %d\r\n" % len(body),
    ]
    if not keep_alive:
        head.append(b"connection: close\r\n")
    if extra:
        for k, v in extra:
            head += [k, b": ", v, b"\r\n"]
    head.append(b"\r\n")
    head.append(body)
    return b"".join(head)


def error_response(code: int, message: str, keep_alive: bool = True) -> bytes:
    return response_bytes(code, codec_json.error_body(message), keep_alive=keep_alive)


class RestApp:
    """Routing and the V2 REST semantics over a DataPlane (shared by all connections)."""

    def __init__(self, dataplane: DataPlane, *, max_body_bytes: int, idle_timeout: float = 75.0) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes
        self.idle_timeout = idle_timeout
        self.connections: set[HttpProtocol] = set()
        self.closing = False  # after SIGTERM's delay: answer with connection: close
        self._sweeper: asyncio.Task[None] | None = None

    def start_sweeper(self) -> None:
        """Close connections with nothing in flight that sent nothing for `idle_timeout` seconds.

        One periodic sweep instead of a timer per request; the default (75 s) outlasts the usual load
        balancer idle timeout (60 s), so the balancer closes first and never reuses a closing socket.
        """
        if self._sweeper is None and self.idle_timeout > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep(self) -> None:
        period = max(0.05, min(5.0, self.idle_timeout / 2))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.idle and now - conn.last_activity > self.idle_timeout:
                    conn.close_if_idle()

    # Synchronous routes (health, metadata, metrics): answered without a task.
    def route_sync(self, method: bytes, path: str) -> tuple[int, bytes, bytes] | None:
        dp = self.dataplane
        if method not in (b"GET", b"HEAD"):
            return None
        if path == "/v2/health/live":
            return 200, b'{"live":true}', JSON
        if path == "/v2/health/ready":
            ready = not dp.draining and bool(dp.models) and all(m.ready for m in dp.models.values())
            return (200 if ready else 503), (b'{"ready":true}' if ready else b'{"ready":false}'), JSON
        if path == "/metrics":
            return 200, dp.metrics.render(), dp.metrics.content_type.encode()
        if path in ("/v2", "/v2/"):
            return (
                200,
                codec_json.dumps(
                    {
                        "name": dp.server_name,
                        "version": dp.server_version,
                        "extensions": ["binary_tensor_data"],
                    }
                ),
                JSON,
            )
        parts = path.split("/")
        if len(parts) >= 4 and parts[1] == "v2" and parts[2] == "models":
            name, version, rest = _model_path(parts)
            if rest is None:
                return None
            try:
                model = dp.get_model(name, version)
            except TrtforgeError as exc:
                return exc.http_status, codec_json.error_body(str(exc)), JSON
            if rest == "":
                return 200, codec_json.dumps(model.metadata.to_json()), JSON
            if rest == "ready":
                ready = model.ready and not dp.draining
                return (200 if ready else 503), codec_json.dumps({"name": model.name, "ready": ready}), JSON
        return None

    async def infer(self, request: Request) -> bytes:
        parts = request.path.split("/")
        name, version, rest = _model_path(parts) if len(parts) >= 4 else ("", None, None)
        ka = request.keep_alive and not self.closing
        if rest != "infer" or parts[1] != "v2" or parts[2] != "models":
            return error_response(404, f"no route for POST {request.path}", ka)
        try:
            header_length = codec_binary.parse_header_length(request.header_length, len(request.body))
            req = codec_binary.decode_request(request.body, header_length)
        except InferenceError as exc:
            self.dataplane.record(name if name in self.dataplane.models else "<unknown>", PROTOCOL, 400)
            return error_response(exc.http_status, str(exc), ka)
        except Exception as exc:  # a decoder bug must still get an answer
            log.exception("decoding an inference request failed")
            self.dataplane.record(name if name in self.dataplane.models else "<unknown>", PROTOCOL, 500)
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}", ka)
        try:
            resp = await self.dataplane.infer(name, version, req, PROTOCOL)
            body, json_length = codec_binary.encode_response(resp, req)
        except TrtforgeError as exc:
            return error_response(exc.http_status, str(exc), ka)
        except Exception as exc:
            log.exception("inference request failed")
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}", ka)
        if json_length is None:
            return response_bytes(200, body, keep_alive=ka)
        return response_bytes(
            200,
            body,
            content_type=OCTET,
            keep_alive=ka,
            extra=[(b"inference-header-content-length", b"%d" % json_length)],
        )


def _model_path(parts: list[str]) -> tuple[str, str | None, str | None]:
    """['', 'v2', 'models', NAME, ('versions', V,) REST...] -> (name, version, rest or None if invalid)."""
    name = unquote(parts[3])
    tail = parts[4:]
    version = None
    if len(tail) >= 2 and tail[0] == "versions":
        version = unquote(tail[1])
        tail = tail[2:]
    if not tail:
        return name, version, ""
    if len(tail) == 1:
        return name, version, tail[0]
    return name, version, None


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection."""

    def __init__(self, app: RestApp) -> None:
        self.app = app
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: collections.deque[Request] = collections.deque()
        self.worker: asyncio.Task[None] | None = None
        self.paused = False
        self.last_activity = 0.0
        self.discarding = False
        self._expect_continue = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.body: list[bytes] = []
        self.size = 0
        self.header_length: bytes | None = None
        self.too_large = False

    # ----------------------------------------------------------------------------------- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self.last_activity = time.monotonic()
        self.app.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.connections.discard(self)
        self.transport = None
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if self.discarding:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self.too_large:
                self._fail(400, f"malformed HTTP request: {exc}")

    @property
    def idle(self) -> bool:
        return not self.queue and (self.worker is None or self.worker.done())

    def close_if_idle(self) -> None:
        if self.idle and self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"inference-header-content-length":
            self.header_length = value
        elif lower == b"content-length":
            try:
                too_large = int(value) > self.app.max_body_bytes
            except ValueError:
                too_large = False  # the parser rejects it
            if too_large:
                self._too_large(int(value))
        elif lower == b"expect" and value.lower() == b"100-continue" and self.transport is not None:
            self._expect_continue = True

    def on_headers_complete(self) -> None:
        if self._expect_continue:
            self._expect_continue = False
            if not self.too_large and self.transport is not None:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            return
        self.size += len(body)
        if self.size > self.app.max_body_bytes:
            self._too_large(self.size)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.too_large or self.transport is None:
            return
        method = self.parser.get_method()
        raw = self.url.decode("latin-1")
        path = raw.partition("?")[0]
        keep_alive = self.parser.should_keep_alive()
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        request = Request(method, path, body, self.header_length, keep_alive)
        if self.idle:
            sync = self._answer_sync(request)
            if sync:
                return
        self.queue.append(request)
        if len(self.queue) >= MAX_PIPELINED and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._work())

    # ------------------------------------------------------------------------------------------- answers
    def _answer_sync(self, request: Request) -> bool:
        """Answer non-inference requests at once; False when the request needs the async path."""
        if request.method == b"POST":
            return False
        ka = request.keep_alive and not self.app.closing
        routed = self.app.route_sync(request.method, request.path)
        if routed is None:
            if request.path.startswith("/v2/models/") and request.path.endswith("/infer"):
                out = error_response(
                    405, f"{request.method.decode()} not allowed on {request.path}; use POST", ka
                )
            else:
                out = error_response(404, f"no route for {request.method.decode()} {request.path}", ka)
        else:
            code, body, ctype = routed
            out = response_bytes(
                code, b"" if request.method == b"HEAD" else body, content_type=ctype, keep_alive=ka
            )
            if request.method == b"HEAD":  # keep the real content-length of a GET
                out = out.replace(b"content-length: 0", b"content-length: %d" % len(body), 1)
        self._write(out, ka)
        return True

    async def _work(self) -> None:
        while self.queue and self.transport is not None:
            request = self.queue.popleft()
            if self.paused and len(self.queue) < MAX_PIPELINED // 2:
                self.transport.resume_reading()
                self.paused = False
            if request.method == b"POST":
                ka = request.keep_alive and not self.app.closing
                try:
                    out = await self.app.infer(request)
                except Exception as exc:  # never leave a client without an answer
                    log.exception("inference request failed")
                    out = error_response(500, f"internal error: {type(exc).__name__}: {exc}", ka)
                ka = ka and not self.app.closing
            elif self._answer_sync(request):
                continue
            else:  # pragma: no cover - _answer_sync answers every non-POST
                continue
            if self.transport is None:
                return
            self._write(out, ka)

    def _write(self, data: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if not keep_alive:
            self.transport.close()
            self.transport = None

    def _too_large(self, size: int) -> None:
        if self.too_large:
            return
        self.too_large = True
        self.app.dataplane.record("<unknown>", PROTOCOL, 413)
        self._fail(
            413,
            f"request body of {size} bytes exceeds the limit of {self.app.max_body_bytes} bytes",
        )

    def _fail(self, code: int, message: str) -> None:
        """Answer an unparseable/oversize request and close: the rest of the stream cannot be trusted.

        A lingering close: the answer goes out, our side shuts down for writing, and whatever the client
        still sends is discarded for a moment, so that it reads the answer instead of a connection reset.
        """
        transport = self.transport
        if transport is None:
            return
        self.transport = None
        self.discarding = True
        transport.write(error_response(code, message, keep_alive=False))
        if transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()
