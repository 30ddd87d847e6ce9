"""Running the emulator: in a background thread with its own event loop (tests, benchmarks, scripts),
a kubeconfig file for kubectl/helm/the clients, and a `kubernetes.client.ApiClient` built for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from kube_emulator.emulator import Emulator
from kube_emulator.server import ApiServer

T = TypeVar("T")


def token_for(service_account: tuple[str, str] | None) -> str:
    """The bearer token: an admin one, or one that acts as (namespace, name) under RBAC (see authz.py)."""
    if service_account is None:
        return "kube-emulator"
    return f"serviceaccount:{service_account[0]}:{service_account[1]}"


def kubeconfig_text(
    url: str, namespace: str = "default", service_account: tuple[str, str] | None = None
) -> str:
    user = f"    token: {token_for(service_account)}\n"
    if service_account is not None:  # kubectl sends no bearer token over plain HTTP: impersonate too
        user += f"    as: system:serviceaccount:{service_account[0]}:{service_account[1]}\n"
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: kube-emulator\n  cluster:\n    server: {url}\n"
        "users:\n"
        f"- name: kube-emulator\n  user:\n{user}"
        "contexts:\n"
        f"- name: kube-emulator\n  context:\n    cluster: kube-emulator\n    user: kube-emulator\n"
        f"    namespace: {namespace}\n"
        "current-context: kube-emulator\n"
    )


def write_kubeconfig(
    url: str, path: str | Path, namespace: str = "default", service_account: tuple[str, str] | None = None
) -> Path:
    """Write a kubeconfig that points kubectl, helm and the clients at `url`; returns the path.

    With `service_account=(namespace, name)` requests act as that ServiceAccount and RBAC applies.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kubeconfig_text(url, namespace, service_account))
    return path


def api_client(url: str, service_account: tuple[str, str] | None = None) -> Any:
    """A `kubernetes.client.ApiClient` for `url`, independent of KUBECONFIG and of global defaults."""
    import kubernetes

    config = kubernetes.client.Configuration()
    config.host = url
    config.api_key = {"authorization": token_for(service_account)}
    config.api_key_prefix = {"authorization": "Bearer"}
    return kubernetes.client.ApiClient(configuration=config)


class EmulatorThread:
    """The emulator served over HTTP on 127.0.0.1 from a daemon thread.

    with EmulatorThread() as emu:
        emu.url, emu.write_kubeconfig(path), emu.api_client(), emu.call(fn, *args)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bookmark_interval: float = 5.0,
        history: int = 5000,
    ) -> None:
        self.host = host
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.history = history
        self.loop: asyncio.AbstractEventLoop | None = None
        self.emulator: Emulator | None = None
        self.server: ApiServer | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorThread:
        self._thread = threading.Thread(target=self._main, name="kube-emulator", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"the Kubernetes emulator did not start: {self._error}") from self._error
        if not self._ready.is_set():
            raise RuntimeError("the Kubernetes emulator did not start within 30 s")
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() or lost at shutdown
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        self.emulator = Emulator(history=self.history)
        self.server = ApiServer(self.emulator, bookmark_interval=self.bookmark_interval)
        self._runner = web.AppRunner(
            self.server.app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.server.address = f"{self.host}:{self.port}"
        self._ready.set()
        await self._stopped.wait()
        self.server.close_watches()
        await self._runner.cleanup()

    def stop(self) -> None:
        if self.loop is not None and self._stopped is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the emulator's loop (where its state lives) and return the result."""
        assert self.loop is not None
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(30)

    def write_kubeconfig(
        self, path: str | Path, namespace: str = "default", service_account: tuple[str, str] | None = None
    ) -> Path:
        return write_kubeconfig(self.url, path, namespace, service_account)

    def api_client(self, service_account: tuple[str, str] | None = None) -> Any:
        return api_client(self.url, service_account)
