"""A Ready ModelDeployment at rest costs the operator (almost) no API requests: its reconcile is not
re-triggered by its own status writes, in builtin autoscaling mode the HPA / ScaledObject children
(neither wanted nor there) are known from the operator's watches, never asked for, the reconcile reads
the object and its children from the watch caches, and the autoscaler's ticks take the serving pods from
the pod watch instead of listing them."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from kube_emulator.helpers import Kube
from kube_emulator.server import ApiServer
from test_integration import MD, NS, digits, drive_to_ready

Request = tuple[float, str, str]  # (monotonic time, method, path)
STEADY_SECONDS = 6.0
CHILD_PATHS = ("/horizontalpodautoscalers/", "/scaledobjects/")
EDITS = 3
MD_PATH = f"/apis/trtforge.dev/v1alpha1/namespaces/{NS}/modeldeployments/digits"


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[Request]:
    """Every request the emulator answers (the test's own helpers use the kubernetes client in-process,
    the operator a subprocess: both are recorded; the test reads only what falls in its window)."""
    log: list[Request] = []
    dispatch = ApiServer._dispatch

    async def recording(self: Any, request: Any) -> Any:
        log.append((time.monotonic(), request.method, request.path))
        return await dispatch(self, request)

    monkeypatch.setattr(ApiServer, "_dispatch", recording)
    return log


def _window(log: list[Request], start: float) -> Counter[tuple[str, str]]:
    return Counter((method, path) for at, method, path in list(log) if at >= start)


def test_ready_builtin_object_at_rest_costs_no_child_reads(
    requests: list[Request], cluster: Kube, operator: Any
) -> None:
    cluster.apply(digits())  # autoscaling enabled, mode builtin; the operator serves hpa and keda too
    drive_to_ready(cluster)
    time.sleep(2.0)
    start = time.monotonic()
    for n in range(EDITS):  # spec changes that each need one reconcile and a status write, no rollout
        autoscaling = {"scaleDownDelaySeconds": 40 + n}
        cluster.patch(*MD, "digits", {"spec": {"serving": {"autoscaling": autoscaling}}}, NS)
        time.sleep(STEADY_SECONDS / EDITS)
    seen = _window(requests, start)
    print(sorted(seen.items()))
    children = {k: n for k, n in seen.items() if any(p in k[1] for p in CHILD_PATHS)}
    assert children == {}, children
    assert seen[("GET", f"/api/v1/namespaces/{NS}/pods")] == 0, seen.most_common()  # ticks: from the watch
    # one reconcile per edit (each writes status once), none for the events of its own status writes;
    # the reconciles read the object and its children from the watch caches: no GET but the Lease's
    assert seen[("PATCH", f"{MD_PATH}/status")] == EDITS, seen.most_common()
    reads = {k: n for k, n in seen.items() if k[0] == "GET" and "/leases/" not in k[1]}
    assert reads == {}, reads
    rate = sum(seen.values()) / STEADY_SECONDS
    assert rate <= 8.0, f"{rate:.1f} requests/s: {seen.most_common()}"
