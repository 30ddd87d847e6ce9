"""kopf 1.45 against the emulator: create/update/delete handlers, status patches, events, finalizers.

The operator runs in a thread with its own event loop and registry, logging in through a
`@kopf.on.login` handler that returns the emulator's connection info.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
import yaml
from kube_emulator.helpers import REPO, Kube

MD = ("trtforge.dev/v1alpha1", "ModelDeployment")


def _md(name: str) -> dict[str, Any]:
    body = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    body["metadata"]["name"] = name
    return body  # type: ignore[no-any-return]


class Operator:
    def __init__(self, kube: Kube) -> None:
        self.registry = kopf.OperatorRegistry()
        self.calls: list[tuple[str, str]] = []
        self._stop = threading.Event()
        reg = self.registry

        @kopf.on.login(registry=reg)
        def login(**_: Any) -> Any:
            return kube.connection_info()

        @kopf.on.startup(registry=reg)
        def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.watching.server_timeout = 30
            settings.persistence.finalizer = "trtforge.dev/test-finalizer"

        @kopf.on.create("trtforge.dev", "v1alpha1", "modeldeployments", registry=reg)
        def created(body: Any, name: str, patch: Any, **_: Any) -> None:
            self.calls.append(("create", name))
            patch.status["phase"] = "Training"
            patch.status["observedGeneration"] = body["metadata"]["generation"]
            kopf.info(body, reason="Training", message=f"training {name}")

        @kopf.on.field(
            "trtforge.dev", "v1alpha1", "modeldeployments", field="spec.serving.replicas", registry=reg
        )
        def replicas_changed(name: str, new: Any, patch: Any, **_: Any) -> None:
            self.calls.append(("replicas", name))
            patch.status["serving"] = {"desiredReplicas": new}

        @kopf.on.delete("trtforge.dev", "v1alpha1", "modeldeployments", registry=reg)
        def deleted(name: str, **_: Any) -> None:
            self.calls.append(("delete", name))

        self.thread = threading.Thread(target=self._run, name="kopf", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            stop_flag: asyncio.Event = asyncio.Event()

            async def watch_stop() -> None:
                while not self._stop.is_set():
                    await asyncio.sleep(0.05)
                stop_flag.set()

            waiter = asyncio.create_task(watch_stop())
            await kopf.operator(
                registry=self.registry, standalone=True, clusterwide=True, stop_flag=stop_flag
            )
            waiter.cancel()

        asyncio.run(main())

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(15)


@pytest.fixture
def operator(kube: Kube) -> Iterator[Operator]:
    op = Operator(kube)
    op.thread.start()
    # ready once kopf watches the custom resource
    kube.wait_for(
        lambda: kube.emulator.store.watches.get(("trtforge.dev", "modeldeployments")),
        15,
        message="kopf to watch modeldeployments",
    )
    yield op
    op.stop()


def _phase(kube: Kube, name: str) -> Any:
    obj = kube.get(*MD, name, "default") or {}
    return (obj.get("status") or {}).get("phase")


def test_create_handler_patches_status_and_posts_an_event(kube: Kube, operator: Operator) -> None:
    kube.create(_md("one"))
    kube.wait_for(lambda: _phase(kube, "one") == "Training", 10, message="status.phase")
    obj = kube.get(*MD, "one", "default")
    assert obj is not None
    assert obj["status"]["observedGeneration"] == 1
    assert "trtforge.dev/test-finalizer" in obj["metadata"]["finalizers"]
    events = kube.wait_for(lambda: kube.events("default", "one"), 10, message="an event")
    assert events[0]["reason"] == "Training" and events[0]["message"] == "training one"
    assert events[0]["metadata"]["name"].startswith("kopf-event-")  # generateName
    assert operator.calls[0] == ("create", "one")


def test_field_handler_and_delete_handler(kube: Kube, operator: Operator) -> None:
    kube.create(_md("two"))
    kube.wait_for(lambda: _phase(kube, "two") == "Training", 10, message="status.phase")
    kube.patch(*MD, "two", {"spec": {"serving": {"replicas": 3}}}, "default")
    kube.wait_for(
        lambda: (
            ((kube.get(*MD, "two", "default") or {}).get("status") or {}).get("serving")
            == {"desiredReplicas": 3}
        ),
        10,
        message="the field handler",
    )
    kube.delete(*MD, "two", "default")
    kube.wait_for(lambda: kube.get(*MD, "two", "default") is None, 10, message="finalizer removal")
    assert ("delete", "two") in operator.calls


def test_create_to_status_round_trip_latency(kube: Kube, operator: Operator) -> None:
    latencies = []
    for i in range(10):
        start = time.perf_counter()
        kube.create(_md(f"lat-{i}"))
        kube.wait_for(
            lambda i=i: _phase(kube, f"lat-{i}") == "Training", 10, interval=0.002, message="status.phase"
        )
        latencies.append(time.perf_counter() - start)
    median = statistics.median(latencies)
    print(
        f"\nkopf create -> handler -> status round trip: median {median * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {len(latencies)}"
    )
    assert median < 0.5
