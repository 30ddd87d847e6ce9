"""Lifecycle of `trtforge serve`: listen, load in the background, serve, drain on SIGTERM, exit.

Order at start-up: the REST (and gRPC) ports answer first (live, not ready), then the model loads, its
reference sample is checked and it is warmed up, and only then does ready turn 200. On SIGTERM (or
SIGINT) ready turns 503 at once; after `shutdown_delay_seconds` (time for Kubernetes to take the pod out
of its endpoints) the listeners close, every connection closes after its last answer (each answer since
SIGTERM says `Connection: close`) or once it has been idle for a moment (at most `drain_timeout_seconds`
in all), and only then does the batcher stop and the backend unload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from trtforge_runtime.errors import TrtforgeError
from trtforge_runtime.serve.app import LoadedModel, ModelPlane
from trtforge_runtime.serve.http1 import HttpProtocol
from trtforge_runtime.serve.rest import Limits, RestApp
from trtforge_runtime.serve.settings import ServeSettings

log = logging.getLogger("trtforge.serve")

# While draining, an idle keep-alive connection closes only after this long without a byte from the
# client: a closed-loop client's next request, sent just before, is read and answered (with a close).
IDLE_CLOSE_SECONDS = 1.0


class Server:
    def __init__(self, settings: ServeSettings, *, reuse_port: bool = False) -> None:
        self.settings = settings
        self.reuse_port = reuse_port  # one of several worker processes on the same port
        self.plane = ModelPlane.build(settings)
        self.metrics, self.dataplane = self.plane.metrics, self.plane.dataplane
        self.doc, self.name = self.plane.doc, self.plane.name
        self.rest = RestApp(
            self.dataplane,
            idle_timeout=settings.idle_timeout_seconds,
            limits=Limits(
                max_body_bytes=settings.max_body_bytes,
                max_header_bytes=settings.max_header_bytes,
                header_timeout=settings.header_timeout_seconds,
                body_timeout=settings.body_timeout_seconds,
            ),
        )
        self.port: int | None = None
        self.grpc_port: int | None = None
        self.loaded: LoadedModel | None = None
        self.load_error: TrtforgeError | None = None
        self.stopping = asyncio.Event()
        self.interrupted = False  # SIGINT (Ctrl-C): stop without the shutdown delay
        self._http: asyncio.Server | None = None
        self._grpc: Any = None
        self._load_task: asyncio.Task[None] | None = None

    # -------------------------------------------------------------------------------------------- start
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        try:
            self._http = await loop.create_server(
                lambda: HttpProtocol(self.rest),
                s.host,
                s.port,
                reuse_address=True,
                reuse_port=self.reuse_port,
                backlog=2048,
            )
        except OSError as exc:
            raise TrtforgeError(f"cannot listen on {s.host}:{s.port}: {exc.strerror or exc}") from None
        self.port = self._http.sockets[0].getsockname()[1]
        self.rest.start_sweeper()
        log.info("REST (KServe V2) listening on http://%s:%d", s.host, self.port)
        if s.grpc_port:
            from trtforge_runtime.serve.grpc_server import start_grpc

            self._grpc = await start_grpc(
                self.dataplane,
                s.host,
                s.grpc_port,
                max_message_bytes=s.max_body_bytes,
                reuse_port=self.reuse_port,
            )
            self.grpc_port = self._grpc.port
        self._load_task = loop.create_task(self._load())

    async def _load(self) -> None:
        started = time.perf_counter()
        try:
            self.loaded = await self.plane.load()
        except TrtforgeError as exc:
            self.load_error = exc
            log.error("model %s cannot be served: %s", self.name, exc)
            self.dataplane.set_ready(self.name, False, str(exc))
            self.stopping.set()
            return
        except Exception as exc:  # keep the reason visible, then stop with an error
            log.exception("model %s failed to load", self.name)
            self.load_error = TrtforgeError(f"model {self.name} failed to load: {exc}")
            self.stopping.set()
            return
        if self.dataplane.models[self.name].ready:
            log.info("ready in %.2f s", time.perf_counter() - started)

    async def wait_loaded(self) -> None:
        if self._load_task is not None:
            await asyncio.shield(self._load_task)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.stopping.is_set():
            self.interrupted = sig == signal.SIGINT
            delay = 0.0 if self.interrupted else self.settings.shutdown_delay_seconds
            log.info("%s: not ready; serving %g s more, then draining in-flight requests", sig.name, delay)
            self.dataplane.begin_drain()
            self.stopping.set()

    # --------------------------------------------------------------------------------------------- stop
    async def shutdown(self) -> None:
        """Drain as Go's `http.Server.Shutdown` and Envoy do: no client request is lost.

        From SIGTERM on every REST answer says `Connection: close` (clients reconnect, through the
        Service, to another endpoint); after the shutdown delay the listeners close, gRPC sends GOAWAY
        and lets its calls finish, a connection closes after its last answer or once it has been quiet
        for IDLE_CLOSE_SECONDS with nothing read, and only when every connection is closed (or the
        drain timeout passes) does the batcher stop.
        """
        s = self.settings
        self.dataplane.begin_drain()
        self.rest.closing = True
        if s.shutdown_delay_seconds and self.load_error is None and not self.interrupted:
            await asyncio.sleep(s.shutdown_delay_seconds)
        if self._http is not None:
            self._http.close()
        grpc_stop = (
            asyncio.get_running_loop().create_task(self._grpc.stop(s.drain_timeout_seconds))
            if self._grpc is not None
            else None
        )
        deadline = time.monotonic() + s.drain_timeout_seconds
        await self._close_connections(deadline)
        if grpc_stop is not None:
            await grpc_stop
        while self.dataplane.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.dataplane.inflight:
            log.warning("drain timeout: %d requests still in flight", self.dataplane.inflight)
        self.rest.stop_sweeper()
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._load_task
        if self.loaded is not None:
            await self.loaded.batcher.stop()
            await asyncio.to_thread(self.loaded.backend.unload)
        if self._http is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http.wait_closed(), 1.0)
        log.info("stopped")

    async def _close_connections(self, deadline: float) -> None:
        """Wait until every REST connection has closed; at the deadline close the rest."""
        conns = self.rest.connections
        idle_for = 0.0 if self.interrupted else IDLE_CLOSE_SECONDS  # Ctrl-C: no waiting
        while conns and time.monotonic() < deadline:
            for conn in list(conns):
                conn.close_if_idle(idle_for)
            await asyncio.sleep(0.01)
        if conns:
            log.warning("drain timeout: closing %d connections", len(conns))
        for conn in list(conns):
            if conn.transport is not None:
                conn.transport.close()

    async def run(self, on_loaded: Callable[[bool], None] | None = None) -> int:
        """Serve until SIGTERM/SIGINT (or a fatal load error); returns the exit code.

        `on_loaded(ready)` is called once the model has loaded (or failed to), and with False on SIGTERM.
        """
        await self.start()
        self.install_signal_handlers()
        if on_loaded is not None:
            await asyncio.wait(
                [asyncio.ensure_future(self.wait_loaded()), asyncio.ensure_future(self.stopping.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            on_loaded(self.dataplane.ready_here())
        await self.stopping.wait()
        if on_loaded is not None:
            on_loaded(False)
        await self.shutdown()
        return self.load_error.exit_code if self.load_error is not None else 0
