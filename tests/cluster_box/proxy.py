"""kube-proxy for the box: each Service gets a loopback address of its own, and each of its ports a TCP
proxy that balances connections over the ready endpoints.

Like kube-proxy (iptables/IPVS), the choice is made per connection when it opens (round robin here)
and an open connection stays with its pod, also after the pod left the endpoints; with no ready
endpoint a connection is refused at once. Clients therefore see what a cluster client sees during a
scale-down or a rollout. HTTP/2 (gRPC) keeps one connection, hence one pod, per channel, as in a
cluster without an L7 balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field

from cluster_box.endpoints import Route

log = logging.getLogger("cluster_box.proxy")


@dataclass
class PortProxy:
    address: str
    port: int
    backends: tuple[tuple[str, int], ...] = ()
    server: asyncio.AbstractServer | None = None
    connections: int = 0
    refused: int = 0
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.address, self.port, reuse_address=True)

    def pick(self) -> tuple[str, int] | None:
        if not self.backends:
            return None
        return self.backends[next(self._turn) % len(self.backends)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = self.pick()
        if backend is None:
            self.refused += 1
            writer.transport.abort()  # REJECT: the client sees the connection reset
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*backend)
        except OSError:
            self.refused += 1
            writer.transport.abort()
            return
        self.connections += 1
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


class ServiceProxies:
    """Service (namespace, name) -> loopback address; (address, port) -> PortProxy. Runs on one loop."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.addresses: dict[tuple[str, str], str] = {}
        self.ports: dict[tuple[str, int], PortProxy] = {}
        self._next = 2

    def address(self, namespace: str, service: str) -> str:
        key = (namespace, service)
        if key not in self.addresses:
            self.addresses[key] = f"{self.prefix}.{self._next}"
            self._next += 1
        return self.addresses[key]

    async def update(self, routes: list[Route]) -> None:
        wanted: dict[tuple[str, int], tuple[tuple[str, int], ...]] = {}
        for route in routes:
            ip = self.address(route.namespace, route.service)
            key = (ip, route.port)
            wanted[key] = route.backends
            proxy = self.ports.get(key)
            if proxy is None:
                proxy = self.ports[key] = PortProxy(ip, route.port, route.backends)
                try:
                    await proxy.start()
                except OSError as exc:
                    log.error(
                        "cannot listen on %s:%d for %s/%s: %s",
                        ip,
                        route.port,
                        route.namespace,
                        route.service,
                        exc,
                    )
                    raise
            elif proxy.backends != route.backends:
                log.info("%s/%s:%d -> %s", route.namespace, route.service, route.port, route.backends)
                proxy.backends = route.backends
        for key in [k for k in self.ports if k not in wanted]:
            await self.ports.pop(key).close()

    async def close(self) -> None:
        for proxy in self.ports.values():
            await proxy.close()
        self.ports.clear()
