"""The cluster in a box: the test API server plus the controllers a cluster runs next to it.

    with ClusterBox(kube, tmp_path) as box:      # kube: kube_emulator.Kube (the `kube` fixture)
        ...apply objects; the operator (a real process) reconciles them...
        box.service_url("ml", "digits", 8080)    # the Service, through the box's kube-proxy

Every `tick` seconds one step runs on the API server's loop: the job controller, the deployment and
replicaset controllers, the kubelet (pods -> local processes), the endpoints controller; the routing
table then goes to the Service proxies. Probes and proxies run on a second loop (`net`), so a slow
step never stalls traffic. `errors` collects exceptions of the controllers: a test should assert it
stays empty. `stop()` SIGKILLs every process the box started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import shutil
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from cluster_box.api import Api
from cluster_box.deployments import DeploymentController
from cluster_box.endpoints import EndpointsController, Route
from cluster_box.jobs import JobController
from cluster_box.kubelet import Kubelet
from cluster_box.proxy import ServiceProxies
from kube_emulator.emulator import Emulator
from kube_emulator.helpers import Kube

log = logging.getLogger("cluster_box")
SHIM_SOURCE = Path(__file__).with_name("podnet.c")
T = TypeVar("T")


def build_shim(folder: Path) -> Path:
    """Compile the podnet LD_PRELOAD shim (pods listen on their own IP); needs a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("the cluster box needs a C compiler (cc/gcc) to build tests/cluster_box/podnet.c")
    out = folder / "podnet.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE), "-ldl"], check=True)
    return out


class _Net:
    """An asyncio loop in a daemon thread for probes and proxies."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cluster-box-net", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class ClusterBox:
    def __init__(self, kube: Kube, root: Path, tick: float = 0.2) -> None:
        self.kube = kube
        self.root = root
        self.tick = tick
        self.errors: list[str] = []
        self.routes: list[Route] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.net: _Net | None = None
        # loopback networks of this box: pods 127.42.N.x, Services 127.43.N.x, N random so that boxes of
        # test processes running side by side on one machine do not share addresses
        n = random.randrange(256)
        self.pod_network, self.service_network = f"127.42.{n}", f"127.43.{n}"
        self.proxies = ServiceProxies(self.service_network)
        self.jobs = JobController()
        self.deployments = DeploymentController()
        self.endpoints = EndpointsController()
        self.kubelet: Kubelet | None = None
        self.steps = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ClusterBox:
        self.root.mkdir(parents=True, exist_ok=True)
        shim = build_shim(self.root)
        self.net = _Net()
        self.kubelet = Kubelet(self.root, shim, self.net.submit, self.pod_network)
        self._thread = threading.Thread(target=self._main, name="cluster-box", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.kubelet is not None:
            self.kubelet.shutdown()
        if self.net is not None:
            self.net.submit(self.proxies.close()).result(10)
            self.net.stop()

    def __enter__(self) -> ClusterBox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the control loop
    def _main(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                routes = self.kube.call(self._step)
                if routes != self.routes:
                    assert self.net is not None
                    self.net.submit(self.proxies.update(routes)).result(10)
                    self.routes = routes
            except Exception:
                text = traceback.format_exc()
                log.error("cluster box step failed:\n%s", text)
                if len(self.errors) < 20:
                    self.errors.append(text)
            self.steps += 1
            self._stop.wait(max(0.0, self.tick - (time.monotonic() - started)))

    def _step(self, emu: Emulator) -> list[Route]:
        api = Api(emu)
        assert self.kubelet is not None
        self.jobs.sync(api)
        self.deployments.sync(api)
        self.kubelet.sync(api)
        return self.endpoints.sync(api)

    # ------------------------------------------------------------------ for tests
    def service_address(self, namespace: str, name: str) -> str:
        """The loopback address that stands for the Service's cluster IP (its proxies listen there)."""
        assert self.net is not None
        return self.net.submit(_value(lambda: self.proxies.address(namespace, name))).result(5)

    def service_url(self, namespace: str, name: str, port: int, scheme: str = "http") -> str:
        return f"{scheme}://{self.service_address(namespace, name)}:{port}"

    def processes(self) -> dict[str, list[int]]:
        """Running container processes by pod `namespace/name`."""
        assert self.kubelet is not None
        out: dict[str, list[int]] = {}
        for run in list(self.kubelet.pods.values()):
            pids = [c.process.popen.pid for c in run.containers if c.process is not None and c.running]
            if pids:
                out[f"{run.namespace}/{run.name}"] = pids
        return out

    def wait_for(self, predicate: Callable[[], T], timeout: float, message: str, interval: float = 0.5) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.errors:
                raise AssertionError(f"the cluster box failed while waiting for {message}:\n{self.errors[0]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
            time.sleep(interval)


async def _value(fn: Callable[[], T]) -> T:
    return fn()
