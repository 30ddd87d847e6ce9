"""The built-in autoscaler end to end: `trtforge operator` (a real process) against the emulator.

The operator-level loop (leader only) scrapes the fake runtime pods' real /metrics on the real clock
(windows shortened to seconds) and hands each decision to the reconcile queue; the ModelDeployment's
reconcile writes the Deployment's replicas, status.serving.desiredReplicas and the Event. Then the mode
switches to hpa: the reconcile creates the HorizontalPodAutoscaler and the replicas are left to it.
No ModelDeployment carries a finalizer for any of this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from autoscaling_cluster import DEPLOYMENT, NS, Serving, create_deployment, create_md
from autoscaling_metrics_pods import MetricsPods
from trtforge_runtime.spec.model import API_VERSION, KIND


def until(predicate: Callable[[], Any], timeout: float, serving: Serving, what: str) -> Any:
    """Plays the kubelet every 0.1 s until `predicate()` is truthy; returns its value."""
    started = time.monotonic()
    while not (value := predicate()):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        serving.kubelet()
        time.sleep(0.1)
    return value


def test_operator_scales_on_real_metrics_then_hands_over_to_hpa(
    cluster: Any, metrics_pods: MetricsPods, operator: Any
) -> None:
    md = create_md(
        cluster,
        minReplicas=1,
        maxReplicas=4,
        target=8,
        tickSeconds=0.2,
        stableWindowSeconds=3,
        panicWindowSeconds=1,
        scaleDownDelaySeconds=1,
    )
    create_deployment(cluster, md, replicas=1)
    serving = Serving(cluster, metrics_pods, capacity=4)
    serving.kubelet()
    serving.load(40.0)
    until(lambda: serving.replicas() == 4, 60, serving, "scale-up to 4")
    panic = until(
        lambda: [e for e in cluster.events(NS, "digits") if e["reason"] == "AutoscalerPanicScaleUp"],
        30,
        serving,
        "the panic scale-up Event",
    )
    assert "(panic window 1s average)" in panic[0]["message"], panic[0]["message"]
    until(
        lambda: (
            (cluster.get(API_VERSION, KIND, "digits", NS).get("status") or {})
            .get("serving", {})
            .get("desiredReplicas")
            == 4
        ),
        30,
        serving,
        "status.serving.desiredReplicas 4",
    )
    serving.load(0.0)
    until(lambda: serving.replicas() == 1, 60, serving, "scale-down to 1")
    until(
        lambda: any(e["reason"] == "AutoscalerScaleDown" for e in cluster.events(NS, "digits")),
        30,
        serving,
        "the scale-down Event",
    )
    assert not cluster.get(API_VERSION, KIND, "digits", NS)["metadata"].get("finalizers")

    # hpa mode: the reconcile creates the HPA and nothing touches the replicas any more
    cluster.patch(API_VERSION, KIND, "digits", {"spec": {"serving": {"autoscaling": {"mode": "hpa"}}}}, NS)
    until(
        lambda: cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", DEPLOYMENT, NS), 30, serving, "HPA"
    )
    serving.load(40.0)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        serving.kubelet()
        time.sleep(0.1)
    assert serving.replicas() == 1
    # a deleted HPA is repaired from its watch event, within a second or two
    cluster.delete("autoscaling/v2", "HorizontalPodAutoscaler", DEPLOYMENT, NS)
    until(
        lambda: cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", DEPLOYMENT, NS),
        2,
        serving,
        "HPA back",
    )
