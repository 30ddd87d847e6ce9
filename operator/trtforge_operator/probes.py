"""The operator's probe endpoints on TRTFORGE_HEALTH_PORT (aiohttp, which kopf already depends on).

- `GET /healthz` (liveness): 200 while the event loop answers, leader or standby alike, so that a
  standby replica is never restarted for standing by;
- `GET /readyz` (readiness): 200 once the operator has started, with the body `leader` or `standby`
  (a standby is ready: it is what a rolling update waits for before it stops the old leader);
  503 `starting` before that;
- `GET /leader`: JSON `{"role", "identity", "holder", "lease"}` for people and scripts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web


class ProbeServer:
    def __init__(self, port: int, describe: Callable[[], dict[str, Any]], host: str = "0.0.0.0") -> None:
        self.port = port
        self.host = host
        self.describe = describe
        self.started = False
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/leader", self._leader)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if not self.started:
            return web.Response(status=503, text="starting\n")
        return web.Response(text=f"{self.describe()['role']}\n")

    async def _leader(self, _: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.describe()) + "\n", content_type="application/json")
