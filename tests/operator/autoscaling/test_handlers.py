"""The kopf daemon end to end: a real kopf operator with the autoscaling handlers against the emulator.

The digits example's serving Deployment is scaled up and down by the daemon from real /metrics endpoints
on the real clock (windows shortened to seconds), then the mode switches to hpa and the daemon hands
the replicas over to the HorizontalPodAutoscaler it creates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import kopf
import pytest
from autoscaling_cluster import DEPLOYMENT, NS, Serving, create_deployment, create_md
from autoscaling_metrics_pods import MetricsPods
from trtforge_operator.autoscaling import handlers
from trtforge_runtime.spec.model import API_VERSION, GROUP, KIND, PLURAL, VERSION


def registry_for(cluster: Any) -> kopf.OperatorRegistry:
    """The autoscaling handlers in a private registry, logged in to the emulator."""
    registry = kopf.OperatorRegistry()
    kopf.on.startup(registry=registry, id="autoscaling-startup")(handlers.autoscaling_startup)
    kopf.on.cleanup(registry=registry, id="autoscaling-cleanup")(handlers.autoscaling_cleanup)
    kopf.daemon(GROUP, VERSION, PLURAL, id="autoscaler", cancellation_timeout=10.0, registry=registry)(
        handlers.autoscaler_daemon
    )

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return cluster.connection_info()  # type: ignore[no-any-return]

    return registry


async def until(predicate: Callable[[], Any], timeout: float, serving: Serving, what: str) -> Any:
    """Plays the kubelet every 0.1 s until `predicate()` is truthy; returns its value."""
    started = time.monotonic()
    while not (value := predicate()):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        serving.kubelet()
        await asyncio.sleep(0.1)
    return value


@pytest.mark.asyncio
async def test_operator_daemon_scales_on_real_metrics_then_hands_over_to_hpa(
    cluster: Any, metrics_pods: MetricsPods, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
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
    serving.load(4.0)

    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.watching.server_timeout = 5
    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry_for(cluster),
            settings=settings,
            standalone=True,
            namespaces=[NS],
            stop_flag=stop,
        )
    )
    try:
        await until(
            lambda: (
                (cluster.get(API_VERSION, KIND, "digits", NS).get("status") or {})
                .get("serving", {})
                .get("desiredReplicas")
                == 1
            ),
            60,  # kopf's start-up on a loaded machine
            serving,
            "the daemon's first tick",
        )
        serving.load(40.0)
        await until(lambda: serving.replicas() == 4, 60, serving, "scale-up to 4")
        # panic mode engaged (40 in flight > twice the capacity of 1 x 8): its Event says so. How fast is
        # the benchmark's business (benchmarks/, on a simulated clock); a wall-clock bound here would
        # only measure the machine's load. The Event follows the scale write, so wait for it.
        panic = await until(
            lambda: [e for e in cluster.events(NS, "digits") if e["reason"] == "AutoscalerPanicScaleUp"],
            30,
            serving,
            "the panic scale-up Event",
        )
        assert "(panic window 1s average)" in panic[0]["message"], panic[0]["message"]
        serving.load(0.0)
        await until(lambda: serving.replicas() == 1, 60, serving, "scale-down to 1")
        # the Event follows the scale write: wait for it instead of assuming it is already there
        await until(
            lambda: any(e["reason"] == "AutoscalerScaleDown" for e in cluster.events(NS, "digits")),
            30,
            serving,
            "the scale-down Event",
        )

        # hpa mode: the daemon creates the HPA and no longer touches the replicas
        patch = {"spec": {"serving": {"autoscaling": {"mode": "hpa"}}}}
        cluster.patch(API_VERSION, KIND, "digits", patch, NS)
        await until(
            lambda: cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", DEPLOYMENT, NS),
            60,
            serving,
            "the HPA",
        )
        serving.load(40.0)
        await asyncio.sleep(1.5)
        assert serving.replicas() == 1
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(operator, 20)
