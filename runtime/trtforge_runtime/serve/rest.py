"""The V2 REST routes over the transport-neutral `DataPlane`: what each path and method answers.

`http1.HttpProtocol` owns the HTTP/1.1 framing; this module owns the routing and the V2 semantics and
returns `Answer`s. Health, readiness and metadata go through the same `DataPlane` calls as gRPC's
(one contract for both front ends) and are answered synchronously; inference runs as a task.
A known path asked with the wrong method gets 405 with `Allow`, an unknown path 404; every error body
is `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from trtforge_runtime.errors import InferenceError, TrtforgeError
from trtforge_runtime.serve import codec_binary, codec_json
from trtforge_runtime.serve.dataplane import DataPlane

if TYPE_CHECKING:
    from trtforge_runtime.serve.http1 import HttpProtocol

log = logging.getLogger("trtforge.serve.rest")

PROTOCOL = "rest"
JSON = b"application/json"
OCTET = b"application/octet-stream"
READ_METHODS = (b"GET", b"HEAD")
ALLOW_READ = b"GET, HEAD"
ALLOW_INFER = b"POST"
MAX_CACHED_TARGETS = 1024
_SERVER_ROUTES = ("/v2/health/live", "/v2/health/ready", "/metrics", "/v2", "/v2/")

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Answer:
    code: int
    body: bytes
    content_type: bytes = JSON
    headers: Headers | None = None


def error(code: int, message: str, headers: Headers | None = None) -> Answer:
    return Answer(code, codec_json.error_body(message), JSON, headers)


@dataclass(slots=True)
class Limits:
    """What one connection may send; larger or slower requests get 413/414/431/408 and a close."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_header_bytes: int = 32 * 1024  # request line + headers
    max_headers: int = 100
    header_timeout: float = 5.0  # from a request's first byte to the end of its headers
    body_timeout: float = 30.0  # longest pause between two pieces of a request body


class RestApp:
    """Routing and V2 REST semantics over a DataPlane (shared by all connections of a server)."""

    def __init__(
        self,
        dataplane: DataPlane,
        *,
        max_body_bytes: int = 64 * 1024 * 1024,
        idle_timeout: float = 75.0,
        limits: Limits | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.limits = limits or Limits(max_body_bytes=max_body_bytes)
        self.max_body_bytes = self.limits.max_body_bytes
        self.idle_timeout = idle_timeout
        self.connections: set[HttpProtocol] = set()
        self.closing = False  # after SIGTERM's delay: answer with connection: close
        self._sweeper: asyncio.Task[None] | None = None
        # infer paths already parsed -> (model name, version); bounded, the paths come from clients
        self._infer_targets: dict[str, tuple[str, str | None]] = {}

    # ------------------------------------------------------------------------------------------ sweeper
    def start_sweeper(self) -> None:
        """Once a second: close idle keep-alive connections and those whose request stalls.

        One periodic sweep instead of timers per request. The idle timeout (75 s) outlasts the usual load
        balancer idle timeout (60 s), so the balancer closes first and never reuses a closing socket; a
        request whose headers are not complete `header_timeout` after its first byte, or whose body
        pauses longer than `body_timeout`, gets 408 and a close.
        """
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep(self) -> None:
        period = min(1.0, self.idle_timeout / 2) if self.idle_timeout > 0 else 1.0
        period = min(period, self.limits.header_timeout / 2 or 1.0)
        while True:
            await asyncio.sleep(max(0.05, period))
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        for conn in list(self.connections):
            conn.check_timeouts(now, self.idle_timeout)

    # ----------------------------------------------------------------------------------------- routes
    def route(self, method: bytes, path: str) -> Answer | None:
        """The answer to a request without a body's meaning; None: an inference request (see `infer`)."""
        if path in _SERVER_ROUTES:
            if method not in READ_METHODS:
                return _not_allowed(method, path, ALLOW_READ)
            return self._server_route(path)
        if path in self._infer_targets:  # the hot path: a model's infer route seen before
            return None if method == b"POST" else _not_allowed(method, path, ALLOW_INFER)
        parts = path.split("/")
        if len(parts) >= 4 and parts[1] == "v2" and parts[2] == "models" and parts[3]:
            name, version, rest = _model_path(parts)
            if rest == "infer":
                if len(self._infer_targets) < MAX_CACHED_TARGETS:
                    self._infer_targets[path] = (name, version)
                return None if method == b"POST" else _not_allowed(method, path, ALLOW_INFER)
            if rest in ("", "ready"):
                if method not in READ_METHODS:
                    return _not_allowed(method, path, ALLOW_READ)
                return self._model_route(name, version, rest)
        return error(404, f"no route for {method.decode('latin-1')} {path}")

    def _server_route(self, path: str) -> Answer:
        dp = self.dataplane
        if path == "/v2/health/live":
            return Answer(200, b'{"live":true}') if dp.live() else Answer(503, b'{"live":false}')
        if path == "/v2/health/ready":
            return Answer(200, b'{"ready":true}') if dp.ready() else Answer(503, b'{"ready":false}')
        if path == "/metrics":
            return Answer(200, dp.metrics.render(), dp.metrics.content_type.encode())
        return Answer(200, codec_json.dumps(dp.server_metadata()))

    def _model_route(self, name: str, version: str | None, rest: str) -> Answer:
        dp = self.dataplane
        try:
            if rest == "":
                return Answer(200, codec_json.dumps(dp.model_metadata(name, version)))
            ready = dp.model_ready(name, version)
        except TrtforgeError as exc:
            return error(exc.http_status, str(exc))
        return Answer(200 if ready else 503, codec_json.dumps({"name": name, "ready": ready}))

    async def infer(self, path: str, body: bytes, header_length: bytes | None) -> Answer:
        target = self._infer_targets.get(path)
        name, version = target if target is not None else _model_path(path.split("/"))[:2]
        dp = self.dataplane
        try:
            length = codec_binary.parse_header_length(header_length, len(body))
            req = codec_binary.decode_request(body, length)
        except InferenceError as exc:
            dp.record(name if name in dp.models else "<unknown>", PROTOCOL, exc.http_status)
            return error(exc.http_status, str(exc))
        except Exception as exc:  # a decoder bug must still get an answer
            log.exception("decoding an inference request failed")
            dp.record(name if name in dp.models else "<unknown>", PROTOCOL, 500)
            return error(500, f"internal error: {type(exc).__name__}: {exc}")
        try:
            resp = await dp.infer(name, version, req, PROTOCOL)
            out, json_length = codec_binary.encode_response(resp, req)
        except TrtforgeError as exc:
            return error(exc.http_status, str(exc))
        except Exception as exc:
            log.exception("inference request failed")
            return error(500, f"internal error: {type(exc).__name__}: {exc}")
        if json_length is None:
            return Answer(200, out)
        return Answer(200, out, OCTET, [(b"inference-header-content-length", b"%d" % json_length)])


def _not_allowed(method: bytes, path: str, allow: bytes) -> Answer:
    return error(
        405,
        f"{method.decode('latin-1')} not allowed on {path}; use {allow.decode()}",
        [(b"allow", allow)],
    )


def _model_path(parts: list[str]) -> tuple[str, str | None, str | None]:
    """['', 'v2', 'models', NAME, ('versions', V,) REST...] -> (name, version, rest or None if invalid)."""
    name = unquote(parts[3]) if len(parts) > 3 else ""
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
