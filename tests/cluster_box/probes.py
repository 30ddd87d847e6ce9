"""The kubelet's probes of one container, run for real against the pod's IP.

startupProbe first (nothing else runs until it succeeds); then readinessProbe and livenessProbe, each on
its own `periodSeconds`, with `initialDelaySeconds`, `timeoutSeconds`, `successThreshold` and
`failureThreshold`. `httpGet` succeeds on a status from 200 to 399, `tcpSocket` on a connection.
Without a readiness probe a started container is ready. The kubelet reads `ready`, `started` and
`restart_reason` (a failed liveness or startup probe) on its next step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any


class ProbeConfigError(Exception):
    pass


def resolve_port(container: dict[str, Any], port: Any) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ProbeConfigError(f'probe port "{port}" is not a named port of container {container.get("name")}')


async def http_get(host: str, port: int, path: str, timeout: float, headers: list[dict[str, str]]) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    try:
        extra = "".join(f"{h['name']}: {h['value']}\r\n" for h in headers)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.31\r\n"
            f"Connection: close\r\n{extra}\r\n".encode()
        )
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()


async def _tcp(host: str, port: int, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


@dataclass
class Probe:
    spec: dict[str, Any]
    container: dict[str, Any]
    successes: int = 0
    failures: int = 0

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10))

    @property
    def initial_delay(self) -> float:
        return float(self.spec.get("initialDelaySeconds", 0))

    async def run_once(self, host: str) -> bool:
        timeout = float(self.spec.get("timeoutSeconds", 1))
        if "httpGet" in self.spec:
            get = self.spec["httpGet"]
            port = resolve_port(self.container, get["port"])
            ok = await http_get(
                get.get("host") or host, port, get.get("path", "/"), timeout, get.get("httpHeaders") or []
            )
        elif "tcpSocket" in self.spec:
            ok = await _tcp(host, resolve_port(self.container, self.spec["tcpSocket"]["port"]), timeout)
        else:
            raise ProbeConfigError(f"the box runs httpGet and tcpSocket probes only, not {sorted(self.spec)}")
        if ok:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
        return ok


@dataclass
class ContainerProbes:
    """Probe state of one container run; `run()` runs on the box's network loop (`future`)."""

    container: dict[str, Any]
    host: str
    started: bool = False
    ready: bool = False
    restart_reason: str | None = None
    error: str | None = None
    future: concurrent.futures.Future[None] | None = field(default=None, repr=False)

    def cancel(self) -> None:
        if self.future is not None:
            self.future.cancel()

    async def run(self) -> None:
        try:
            await self._run()
        except ProbeConfigError as exc:
            self.error = str(exc)

    async def _run(self) -> None:
        c = self.container
        startup = Probe(c["startupProbe"], c) if c.get("startupProbe") else None
        readiness = Probe(c["readinessProbe"], c) if c.get("readinessProbe") else None
        liveness = Probe(c["livenessProbe"], c) if c.get("livenessProbe") else None
        t0 = time.monotonic()
        if startup is not None:
            await asyncio.sleep(startup.initial_delay)
            while True:
                if await startup.run_once(self.host):
                    break
                if startup.failures >= int(startup.spec.get("failureThreshold", 3)):
                    self.restart_reason = "Container failed startup probe, will be restarted"
                    return
                await asyncio.sleep(startup.period)
        self.started = True
        if readiness is None:
            self.ready = True
        due = {id(p): t0 + p.initial_delay for p in (readiness, liveness) if p is not None}
        while True:
            now = time.monotonic()
            for probe in (readiness, liveness):
                if probe is None or due[id(probe)] > now:
                    continue
                due[id(probe)] = now + probe.period
                await probe.run_once(self.host)
                if probe is readiness:
                    if probe.successes >= int(probe.spec.get("successThreshold", 1)):
                        self.ready = True
                    elif probe.failures >= int(probe.spec.get("failureThreshold", 3)):
                        self.ready = False
                elif probe.failures >= int(probe.spec.get("failureThreshold", 3)):
                    self.restart_reason = "Container failed liveness probe, will be restarted"
                    return
            nxt = min(due.values(), default=now + 3600)
            await asyncio.sleep(max(0.05, nxt - time.monotonic()))
