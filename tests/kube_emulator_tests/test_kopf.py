"""kopf 1.45 against the emulator: create/update/delete handlers, status patches, events, finalizers,
peering, and create -> handler -> status for objects created one after another (its latency:
benchmarks/emulator_bench.py). The operator runs in a
`KopfThread` (its own thread and loop, a login handler returning the emulator's connection info).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kopf
import pytest
import yaml
from kube_emulator.helpers import REPO, Kube
from kube_emulator.kopf_runner import KopfThread

MD = ("trtforge.dev/v1alpha1", "ModelDeployment")


def _md(name: str) -> dict[str, Any]:
    body = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    body["metadata"]["name"] = name
    return body  # type: ignore[no-any-return]


def _registry(calls: list[tuple[str, str]]) -> kopf.OperatorRegistry:
    # explicit ids: the default id of a nested function ("_registry.<locals>.created") becomes an
    # annotation key that the API server (and so the emulator) refuses
    reg = kopf.OperatorRegistry()

    @kopf.on.create("trtforge.dev", "v1alpha1", "modeldeployments", registry=reg, id="created")
    def created(body: Any, name: str, patch: Any, **_: Any) -> None:
        calls.append(("create", name))
        patch.status["phase"] = "Training"
        patch.status["observedGeneration"] = body["metadata"]["generation"]
        kopf.info(body, reason="Training", message=f"training {name}")

    @kopf.on.field(
        "trtforge.dev",
        "v1alpha1",
        "modeldeployments",
        field="spec.serving.replicas",
        registry=reg,
        id="replicas",
    )
    def replicas_changed(name: str, new: Any, patch: Any, **_: Any) -> None:
        calls.append(("replicas", name))
        patch.status["serving"] = {"desiredReplicas": new}

    @kopf.on.delete("trtforge.dev", "v1alpha1", "modeldeployments", registry=reg, id="deleted")
    def deleted(name: str, **_: Any) -> None:
        calls.append(("delete", name))

    return reg


def _settings(settings: kopf.OperatorSettings) -> None:
    settings.persistence.finalizer = "trtforge.dev/test-finalizer"


@pytest.fixture
def calls() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def operator(kube: Kube, calls: list[tuple[str, str]]) -> Iterator[KopfThread]:
    with kube.run_operator(registry=_registry(calls), settings=_settings) as op:
        yield op


def _phase(kube: Kube, name: str) -> Any:
    obj = kube.get(*MD, name, "default") or {}
    return (obj.get("status") or {}).get("phase")


def test_create_handler_patches_status_and_posts_an_event(
    kube: Kube, operator: KopfThread, calls: list[tuple[str, str]]
) -> None:
    kube.create(_md("one"))
    kube.wait_for(lambda: _phase(kube, "one") == "Training", 10, message="status.phase")
    obj = kube.get(*MD, "one", "default")
    assert obj is not None
    assert obj["status"]["observedGeneration"] == 1
    assert "trtforge.dev/test-finalizer" in obj["metadata"]["finalizers"]
    events = kube.wait_for(lambda: kube.events("default", "one"), 10, message="an event")
    assert events[0]["reason"] == "Training" and events[0]["message"] == "training one"
    assert events[0]["metadata"]["name"].startswith("kopf-event-")  # generateName
    assert calls[0] == ("create", "one")


def test_field_handler_and_delete_handler(
    kube: Kube, operator: KopfThread, calls: list[tuple[str, str]]
) -> None:
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
    assert ("delete", "two") in calls


def test_operator_restart_resumes_without_rehandling(kube: Kube, calls: list[tuple[str, str]]) -> None:
    reg = _registry(calls)
    with kube.run_operator(registry=reg, settings=_settings):
        kube.create(_md("three"))
        kube.wait_for(lambda: _phase(kube, "three") == "Training", 10, message="status.phase")
    with kube.run_operator(registry=reg, settings=_settings):
        kube.create(_md("four"))
        kube.wait_for(lambda: _phase(kube, "four") == "Training", 10, message="status.phase")
    assert [c for c in calls if c[0] == "create"] == [("create", "three"), ("create", "four")]


def test_peering_mode(kube: Kube, calls: list[tuple[str, str]]) -> None:
    kube.create({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "trtforge"}})
    with kube.run_operator(registry=_registry(calls), peering_name="trtforge"):
        kube.create(_md("peered"))
        kube.wait_for(lambda: _phase(kube, "peered") == "Training", 10, message="status.phase")
        peering = kube.get("kopf.dev/v1", "ClusterKopfPeering", "trtforge")
        assert peering is not None and peering.get("status")  # kopf announced itself


def test_creations_in_a_row_each_get_their_status(kube: Kube, operator: KopfThread) -> None:
    """create -> handler -> status patch for one object after another (each waits for the last). The
    round trip's latency is a figure of benchmarks/emulator_bench.py, not asserted here: the waits only
    guard against a hang."""
    for i in range(10):
        kube.create(_md(f"lat-{i}"))
        kube.wait_for(lambda i=i: _phase(kube, f"lat-{i}") == "Training", 60, message=f"status of lat-{i}")
