"""`trtforge serve --workers N`: N server processes on the same ports, so a pod uses every core it has.

Each worker is a whole server (HTTP, gRPC, batcher, its own copy of the model) in a spawned process that
binds the ports with SO_REUSEPORT: the kernel spreads new connections over the workers, and nothing is
shared on the request path. The parent only supervises:

- ports: a port 0 (any free port) is resolved once in the parent, so every worker binds the same one;
- metrics: prometheus-client's multiprocess mode in a fresh folder (`metrics.ServeMetrics`), so
  `/metrics` on any worker is the pod's total and the autoscaler still scrapes one endpoint per pod;
- readiness: a worker answers ready only when every worker has loaded its model (shared flags);
- signals: SIGTERM/SIGINT go to every worker, each fails readiness at once, keeps serving for the
  shutdown delay, drains and exits; the parent exits 0 when all did;
- a worker that dies on its own (crash, OOM kill) takes the pod down (the others are stopped and the
  parent exits non-zero), so Kubernetes restarts the container rather than serving on fewer cores
  than its probes believe.

The default number of workers is the container's CPU limit (cgroup v2 `cpu.max`, cgroup v1 CFS quota),
whole cores, at least one, else the CPUs this process may run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from trtforge_runtime.serve.metrics import MULTIPROC_ENV
from trtforge_runtime.serve.settings import ServeSettings

log = logging.getLogger("trtforge.serve.workers")

CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP) -> float | None:
    """The container's CPU limit in cores (None: unlimited or unknown)."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota != "max":
            return int(quota) / int(period or "100000")
        return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def default_workers(root: Path = CGROUP) -> int:
    """Whole cores of the CPU limit (at least 1), else the CPUs this process may run on."""
    limit = cgroup_cpu_limit(root)
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    if limit is not None:
        return max(1, min(usable, math.floor(limit + 1e-9)))
    return max(1, usable)


def _reserve(host: str, port: int) -> tuple[int, socket.socket | None]:
    """A concrete port for `port` (0: any free one), held by a bound SO_REUSEPORT socket meanwhile.

    The held socket never listens, so the kernel never hands it a connection; it only keeps the port.
    """
    if port == 0:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, 0))
        return int(sock.getsockname()[1]), sock
    return port, None


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the parent dies (a SIGKILLed parent leaves no orphan serving)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def worker_main(settings_doc: dict[str, Any], index: int, flags: Any, log_level: int) -> None:
    """Entry point of one worker process (spawned: a fresh interpreter with the parent's environment)."""
    _die_with_parent()
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s %(levelname)s %(name)s[w{index}]: %(message)s",
        stream=sys.stderr,
    )
    settings = ServeSettings.model_validate(settings_doc)
    from trtforge_runtime.errors import TrtforgeError
    from trtforge_runtime.serve.command import configure_logging, loop_factory
    from trtforge_runtime.serve.server import Server

    configure_logging(settings.log_format)
    try:
        code = _serve_worker(settings, index, flags, Server, loop_factory)
    except TrtforgeError as exc:
        log.error("worker %d: %s", index, exc)
        code = exc.exit_code
    sys.exit(code)


def _serve_worker(
    settings: ServeSettings, index: int, flags: Any, server_class: Any, loop_factory: Any
) -> int:
    Server = server_class

    async def main() -> int:
        server = Server(settings, reuse_port=True)
        server.dataplane.peers_ready = lambda: all(flags[:])

        def loaded(ready: bool) -> None:
            flags[index] = 1 if ready else 0

        return await server.run(on_loaded=loaded)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return int(runner.run(main()))


class Supervisor:
    def __init__(self, settings: ServeSettings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
        self.stopping = False

    def _signal(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            log.info("%s: stopping %d workers", signal.Signals(signum).name, self.workers)
        self.stopping = True
        for proc in self.procs:
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signum)

    def run(self) -> int:
        s = self.settings
        folder = tempfile.mkdtemp(prefix="trtforge-metrics-")
        os.environ[MULTIPROC_ENV] = folder  # inherited by the spawned workers
        port, hold = _reserve(s.host, s.port)
        grpc_port, grpc_hold = _reserve(s.host, s.grpc_port) if s.grpc_port else (0, None)
        doc = s.model_dump(mode="json") | {"port": port, "grpc_port": grpc_port, "workers": 1}
        ctx = multiprocessing.get_context("spawn")
        flags = ctx.Array("b", self.workers, lock=False)
        level = logging.getLogger().getEffectiveLevel()
        self.procs = [
            ctx.Process(target=worker_main, args=(doc, i, flags, level), name=f"trtforge-worker-{i}")
            for i in range(self.workers)
        ]
        previous = {sig: signal.signal(sig, self._signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for proc in self.procs:
                proc.start()
            log.info("%d workers serving on port %d (SO_REUSEPORT)", self.workers, port)
            return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for proc in self.procs:
                if proc.is_alive():
                    proc.kill()
                    proc.join()
            for sock in (hold, grpc_hold):
                if sock is not None:
                    sock.close()
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(folder, ignore_errors=True)

    def _supervise(self) -> int:
        from prometheus_client import multiprocess

        code = 0
        running = {p.sentinel: p for p in self.procs}
        while running:
            for sentinel in wait(list(running), timeout=0.5):
                proc = running.pop(sentinel)  # type: ignore[arg-type]
                proc.join()
                if proc.pid is not None:
                    multiprocess.mark_process_dead(proc.pid)
                exitcode = proc.exitcode or 0
                if not self.stopping:
                    log.error("worker %s exited with %s; stopping the others", proc.name, exitcode)
                    code = exitcode or 1
                    self._signal(signal.SIGTERM, None)
                elif exitcode:
                    code = code or exitcode
        return code


def run_workers(settings: ServeSettings, workers: int) -> int:
    return Supervisor(settings, workers).run()
