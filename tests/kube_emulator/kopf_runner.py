"""Running a kopf operator in a background thread against the emulator (tests and benchmarks).

    with KopfThread(kube, modules=["trtforge_operator.handlers"]) as op:
        ...   # the operator is logged in, started and watching

The operator gets a `@kopf.on.login` handler returning the emulator's connection info on its
registry, its own event loop, and a stop flag; `__enter__` returns once kopf reports ready and is
watching the given resources.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kube_emulator.emulator import Emulator
    from kube_emulator.helpers import Kube


class _Holder:
    """What the handlers registered once per registry use: the current emulator and settings hook."""

    def __init__(self, registry: Any) -> None:
        import kopf

        self.kube: Kube | None = None
        self.settings: Callable[[Any], None] | None = None

        @kopf.on.login(registry=registry, id="kube-emulator-login")
        def _login(**_: Any) -> Any:
            assert self.kube is not None
            return self.kube.connection_info()

        @kopf.on.startup(registry=registry, id="kube-emulator-settings")
        def _configure(settings: Any, **_: Any) -> None:
            if self.settings is not None:
                self.settings(settings)


_HOLDERS: dict[int, _Holder] = {}


class KopfThread:
    """kopf.operator(...) in a daemon thread; a context manager."""

    def __init__(
        self,
        kube: Kube,
        *,
        registry: Any = None,
        modules: Iterable[str] = (),
        settings: Callable[[Any], None] | None = None,
        clusterwide: bool = True,
        namespaces: Iterable[str] = (),
        standalone: bool = True,
        peering_name: str | None = None,
        liveness_endpoint: str | None = None,
        memo: Any = None,
        wait_for_watches: Iterable[tuple[str, str]] = (("trtforge.dev", "modeldeployments"),),
        timeout: float = 30.0,
    ) -> None:
        import kopf

        for module in modules:
            importlib.import_module(module)
        self.kube = kube
        self.registry = registry if registry is not None else kopf.get_default_registry()
        self.namespaces = list(namespaces)
        self.clusterwide = clusterwide and not self.namespaces
        self.standalone = standalone if peering_name is None else False
        self.peering_name = peering_name
        self.liveness_endpoint = liveness_endpoint
        self.memo = memo
        self.wait_for_watches = list(wait_for_watches)
        self.timeout = timeout
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="kopf-operator", daemon=True)

        holder = _HOLDERS.get(id(self.registry))
        if holder is None:  # register the login and settings handlers once per registry
            holder = _HOLDERS[id(self.registry)] = _Holder(self.registry)
        holder.kube = kube
        holder.settings = settings

    def _main(self) -> None:
        import kopf

        try:
            asyncio.run(
                kopf.operator(
                    registry=self.registry,
                    standalone=self.standalone,
                    peering_name=self.peering_name,
                    clusterwide=self.clusterwide,
                    namespaces=self.namespaces,
                    liveness_endpoint=self.liveness_endpoint,
                    memo=self.memo,
                    stop_flag=self.stop_flag,
                    ready_flag=self.ready_flag,
                )
            )
        except BaseException as exc:  # reported by start()/stop()
            self.error = exc
            self.ready_flag.set()

    def start(self) -> KopfThread:
        self._thread.start()
        if not self.ready_flag.wait(self.timeout):
            raise RuntimeError(f"kopf did not start within {self.timeout} s")
        if self.error is not None:
            raise RuntimeError(f"kopf failed to start: {self.error!r}") from self.error
        for skey in self.wait_for_watches:

            def watched(emu: Emulator, skey: tuple[str, str] = skey) -> bool:
                return bool(emu.store.watches.get(skey))

            def probe(watched: Callable[[Emulator], bool] = watched) -> bool:
                return self.kube.call(watched)

            self.kube.wait_for(
                probe,
                self.timeout,
                message=f"kopf to watch {skey[1]}.{skey[0]}",
            )
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self._thread.join(30)
        if self._thread.is_alive():
            raise RuntimeError("kopf did not stop within 30 s")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> KopfThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
