"""Real HTTP `/metrics` endpoints standing in for runtime pods, with controllable values.

One aiohttp server in a background thread listens on one 127.0.0.1 port per fake pod and answers what the
test sets: the in-flight gauge, the request counter, a raw body, an HTTP status, or a delay (a pod that
does not answer in time). With `gate = N` no pod answers before N requests are in flight at once (a
scraper that asks one pod after another never gets an answer): concurrency tested without a clock.
Used by the scrape and controller tests and by benchmarks/autoscaler_bench.py.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakePod:
    name: str
    port: int = 0
    inflight: float = 0.0
    requests_total: float = 0.0
    body: str | None = None  # served verbatim instead of the rendered metrics when set
    status: int = 200
    delay: float = 0.0
    hits: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def render(self) -> str:
        def fmt(v: float) -> str:
            return "NaN" if math.isnan(v) else repr(float(v))

        return (
            "# HELP trtforge_inflight_requests Requests being processed.\n"
            "# TYPE trtforge_inflight_requests gauge\n"
            f'trtforge_inflight_requests{{model="digits"}} {fmt(self.inflight)}\n'
            "# HELP trtforge_requests Requests answered.\n"
            "# TYPE trtforge_requests counter\n"
            f'trtforge_requests_total{{model="digits",code="200"}} {fmt(self.requests_total)}\n'
            'trtforge_requests_total{model="digits",code="503"} 0.0\n'
        )


class MetricsPods:
    """Fake pods' metric servers; thread-safe to drive from sync or async tests."""

    def __init__(self) -> None:
        self.pods: dict[str, FakePod] = {}
        self._by_port: dict[int, FakePod] = {}
        self._sites: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="metrics-pods", daemon=True)
        self._runner: web.AppRunner | None = None
        self.gate = 0  # answer only once this many requests are in flight together (0: at once)
        self.in_flight = 0
        self.max_in_flight = 0
        self._opened: asyncio.Event | None = None

    def start(self) -> MetricsPods:
        self._thread.start()
        self._call(self._setup())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def add(self, name: str, inflight: float = 0.0, **fields: Any) -> FakePod:
        pod = FakePod(name=name, inflight=inflight, **fields)
        pod.port = self._call(self._listen(pod))
        self.pods[name] = pod
        self._by_port[pod.port] = pod
        return pod

    def remove(self, name: str) -> None:
        """Closes the pod's port: later connections are refused."""
        pod = self.pods.pop(name)
        self._by_port.pop(pod.port, None)
        self._call(self._sites.pop(name).stop())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _setup(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()

    async def _listen(self, pod: FakePod) -> int:
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        site = web.SockSite(self._runner, sock)
        await site.start()
        self._sites[pod.name] = site
        return int(sock.getsockname()[1])

    async def _metrics(self, request: web.Request) -> web.Response:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        pod = self._by_port.get(int(sockname[1])) if sockname else None
        if pod is None:
            return web.Response(status=404)
        pod.hits += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate:
                self._opened = self._opened or asyncio.Event()
                if self.in_flight >= self.gate:
                    self._opened.set()
                await self._opened.wait()  # the scraper's own time-out ends a wait that never opens
            return await self._answer(pod)
        finally:
            self.in_flight -= 1

    async def _answer(self, pod: FakePod) -> web.Response:
        if pod.delay:
            await asyncio.sleep(pod.delay)
        if pod.status != 200:
            return web.Response(status=pod.status, text="error")
        body = pod.body if pod.body is not None else pod.render()
        return web.Response(text=body, content_type="text/plain", charset="utf-8")
