"""The built-in autoscaler against the Kubernetes emulator, driven by real HTTP /metrics endpoints.

The serving Deployment is the operator's own manifest for the digits example; the test plays the
Deployment controller and kubelet (pods on 127.0.0.1, one fake runtime endpoint per pod) and drives the
controller's ticks on a simulated clock, so that the 60 s windows pass in a fraction of a second.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from autoscaling_cluster import NS, TICK, Serving, create_deployment, create_md
from autoscaling_metrics_pods import MetricsPods
from trtforge_operator.apply import Kube as ApiKube
from trtforge_operator.autoscaling.controller import AutoscalerController, TickResult, apply_decision
from trtforge_operator.autoscaling.scrape import MetricsScraper
from trtforge_runtime.spec.model import API_VERSION, KIND


class Ticker:
    def __init__(self, cluster: Any, controller: AutoscalerController) -> None:
        self.cluster = cluster
        self.controller = controller
        self.now = 0.0

    async def tick(self, serving: Serving) -> TickResult:
        self.now += TICK
        md = self.cluster.get(API_VERSION, KIND, "digits", NS)
        result = await self.controller.tick(md)
        if result.scaled and result.decision is not None:  # what the reconcile does with a decision
            await apply_decision(self.controller.kube, md, result.decision)
        serving.kubelet()
        return result


@pytest_asyncio.fixture
async def controller(cluster: Any) -> Any:
    kube = ApiKube(cluster.client())
    ctrl = AutoscalerController(kube, namespace=NS, name="digits", scraper=MetricsScraper(timeout=0.5))
    yield ctrl
    await ctrl.close()
    kube.close()


def autoscaler_events(cluster: Any) -> list[dict[str, Any]]:
    events = cluster.events(NS, "digits")
    return sorted(events, key=lambda e: e["metadata"]["creationTimestamp"] + e["metadata"]["name"])


@pytest.mark.asyncio
async def test_replicas_follow_real_metrics_up_and_down(
    cluster: Any, metrics_pods: MetricsPods, controller: AutoscalerController
) -> None:
    md = create_md(cluster, minReplicas=1, maxReplicas=4, target=8)
    create_deployment(cluster, md, replicas=1)
    serving = Serving(cluster, metrics_pods, capacity=4)
    serving.kubelet()
    ticker = Ticker(cluster, controller)
    controller.clock = lambda: ticker.now

    serving.load(6.0)  # below one replica's target: steady at 1
    for _ in range(10):
        result = await ticker.tick(serving)
        assert result.decision is not None and not result.scaled
        assert [s.value for s in result.scrapes] == [6.0]
        assert result.decision.desired == 1
    md = cluster.get(API_VERSION, KIND, "digits", NS)

    serving.load(40.0)  # 5x one replica: panic, straight to maxReplicas
    result = await ticker.tick(serving)
    assert result.scaled and result.decision is not None and result.decision.desired == 4
    assert serving.replicas() == 4
    (up,) = [e for e in autoscaler_events(cluster) if e["reason"] == "AutoscalerPanicScaleUp"]
    assert up["type"] == "Normal" and up["involvedObject"]["uid"] == md["metadata"]["uid"]
    assert "replicas 1 -> 4" in up["message"] and "target 8 per replica" in up["message"]
    assert "panic window 6s" in up["message"]

    # four pods now share the load; one of them turns bad: ignored (counted at target), nothing breaks
    bad = serving.serving_fakes()[3]
    bad.body = "trtforge_inflight_requests NaN\n"
    for _ in range(5):
        result = await ticker.tick(serving)
        assert not result.scaled
    assert sorted(s.value for s in result.scrapes if s.value is not None) == [10.0, 10.0, 10.0]
    assert [s.pod for s in result.scrapes if s.value is None] != []
    bad.body = None

    # the load goes away: no scale-down before the panic ends (a stable window) plus the delay
    serving.load(0.0)
    drop = ticker.now
    history: list[tuple[float, int]] = []
    while ticker.now < drop + 200.0 and serving.replicas() > 1:
        await ticker.tick(serving)
        history.append((ticker.now, serving.replicas()))
    assert serving.replicas() == 1, history
    first_down = next(t for t, n in history if n < 4)
    assert first_down - drop >= 30.0
    counts = [n for _, n in history]
    assert counts == sorted(counts, reverse=True)  # down only, no flapping
    downs = [e for e in autoscaler_events(cluster) if e["reason"] == "AutoscalerScaleDown"]
    assert downs and "-> 1:" in downs[-1]["message"] and "stable window 60s" in downs[-1]["message"]


@pytest.mark.asyncio
async def test_rps_metric_scales_on_counter_rates(
    cluster: Any, metrics_pods: MetricsPods, controller: AutoscalerController
) -> None:
    md = create_md(cluster, minReplicas=1, maxReplicas=6, target=100, metric="rps")
    create_deployment(cluster, md, replicas=1)
    serving = Serving(cluster, metrics_pods, capacity=6)
    serving.kubelet()
    ticker = Ticker(cluster, controller)
    controller.clock = lambda: ticker.now
    for _ in range(6):
        live = serving.serving_fakes()
        for pod in live:
            pod.requests_total += 400.0 * TICK / len(live)  # 400 requests/s in all
        await ticker.tick(serving)
    assert serving.replicas() == 4
    # a restarted pod (counter back near zero) is a reset, not a negative rate
    serving.serving_fakes()[0].requests_total = 5.0
    result = await ticker.tick(serving)
    assert result.decision is not None and result.decision.desired == 4


@pytest.mark.asyncio
async def test_other_modes_and_missing_deployment_leave_replicas_alone(
    cluster: Any, metrics_pods: MetricsPods, controller: AutoscalerController
) -> None:
    md = create_md(cluster, minReplicas=1, maxReplicas=4, target=8)
    result = await controller.tick(md)
    assert result.decision is None and "does not exist yet" in (result.skipped or "")

    create_deployment(cluster, md, replicas=2)
    serving = Serving(cluster, metrics_pods, capacity=4)
    serving.kubelet()
    serving.load(100.0)
    for mode in ("hpa", "keda"):
        cluster.patch(API_VERSION, KIND, "digits", {"spec": {"serving": {"autoscaling": {"mode": mode}}}}, NS)
        result = await controller.tick(cluster.get(API_VERSION, KIND, "digits", NS))
        assert result.decision is None and result.skipped == f"autoscaling mode {mode}"
    cluster.patch(API_VERSION, KIND, "digits", {"spec": {"serving": {"autoscaling": {"enabled": False}}}}, NS)
    result = await controller.tick(cluster.get(API_VERSION, KIND, "digits", NS))
    assert result.skipped == "autoscaling off"
    assert serving.replicas() == 2
    assert autoscaler_events(cluster) == []


@pytest.mark.asyncio
async def test_silent_pods_keep_the_count(
    cluster: Any, metrics_pods: MetricsPods, controller: AutoscalerController
) -> None:
    md = create_md(cluster, minReplicas=1, maxReplicas=4, target=8)
    create_deployment(cluster, md, replicas=3)
    serving = Serving(cluster, metrics_pods, capacity=4)
    serving.kubelet()
    ticker = Ticker(cluster, controller)
    controller.clock = lambda: ticker.now
    for pod in serving.fake:
        metrics_pods.remove(pod.name)  # every pod refuses connections
    for _ in range(60):
        result = await ticker.tick(serving)
        assert all(s.value is None for s in result.scrapes)
    assert serving.replicas() == 3


@pytest.mark.asyncio
async def test_the_loop_reports_errors_once_and_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import socket

    from kube_emulator.runner import api_client
    from trtforge_operator.autoscaling.controller import AutoscalingLoop
    from trtforge_operator.settings import OperatorSettings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kube = ApiKube(api_client(f"http://127.0.0.1:{port}"))  # nothing listens there
    meta = {"name": "digits", "namespace": NS, "uid": "u-1"}
    bad = {"metadata": meta, "spec": {"serving": {"autoscaling": {"target": -1}}}}
    good = {"metadata": meta, "spec": {"serving": {"autoscaling": {"tickSeconds": 0.1}}}}
    deployment = {"metadata": {"name": "digits-predictor"}, "spec": {"replicas": 1, "selector": {}}}
    mds: dict[Any, Any] = {}
    now = [0.0]
    triggered: list[Any] = []
    loop = AutoscalingLoop(
        kube,
        OperatorSettings(),
        modeldeployments=mds,
        deployments={(NS, "digits"): deployment},
        decisions={},
        trigger=triggered.append,
        clock=lambda: now[0],
    )
    with caplog.at_level(logging.WARNING, logger="trtforge_operator.autoscaling.controller"):
        for body in (bad, bad, bad, good, good):
            mds[(NS, "digits")] = body
            await loop.tick_due()
            now[0] += 1.0
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "trtforge_operator.autoscaling.controller"
    ]
    assert len(warnings) == 2, warnings  # each problem once, not once per tick
    assert "spec.serving.autoscaling.target" in warnings[0] and "greater than 0" in warnings[0]
    assert "digits" in warnings[1] and "autoscaling:" in warnings[1]
    assert triggered == []  # no decision, nothing queued
    await loop.stop()
    kube.close()


@pytest.mark.asyncio
async def test_the_loop_queues_decisions_and_costs_nothing_for_other_objects(
    cluster: Any, metrics_pods: MetricsPods
) -> None:
    from trtforge_operator.autoscaling.controller import AutoscalingLoop
    from trtforge_operator.settings import OperatorSettings

    md = create_md(cluster, minReplicas=1, maxReplicas=4, target=8)
    create_deployment(cluster, md, replicas=1)
    serving = Serving(cluster, metrics_pods, capacity=4)
    serving.kubelet()
    serving.load(40.0)
    kube = ApiKube(cluster.client())
    key = (NS, "digits")
    hpa = {
        **md,
        "metadata": {**md["metadata"], "name": "other"},
        "spec": {"serving": {"autoscaling": {"mode": "hpa"}}},
    }
    mds = {key: md, (NS, "other"): hpa}
    deployments = {key: cluster.get("apps/v1", "Deployment", "digits-predictor", NS)}
    decisions: dict[Any, Any] = {}
    triggered: list[Any] = []
    now = [0.0]
    loop = AutoscalingLoop(
        kube,
        OperatorSettings(),
        modeldeployments=mds,
        deployments=deployments,
        decisions=decisions,
        trigger=triggered.append,
        clock=lambda: now[0],
    )
    before = kube.requests
    await loop.tick_due()
    assert triggered == [key] and decisions[key].desired == 4  # panic: straight to maxReplicas
    assert kube.requests - before == 1  # one pod list; nothing read for the hpa-mode object
    assert serving.replicas() == 1  # the loop decides, the reconcile writes
    await loop.tick_due()  # not due yet (tickSeconds 2): no request at all
    assert kube.requests - before == 1
    now[0] += 2.0  # the reconcile has not applied the decision yet: it stays queued, not queued again
    await loop.tick_due()
    assert triggered == [key] and decisions[key].desired == 4
    decisions.clear()  # applied, but the watch has not delivered the Deployment yet: asked once more
    now[0] += 2.0
    await loop.tick_due()
    assert triggered == [key, key] and decisions[key].desired == 4
    await loop.stop()
    kube.close()


def test_pod_readiness_and_metrics_url() -> None:
    from trtforge_operator.autoscaling.controller import is_ready, metrics_url

    ready = {"type": "Ready", "status": "True"}
    pod: dict[str, Any] = {
        "metadata": {"name": "p", "annotations": {"prometheus.io/port": "9100", "prometheus.io/path": "m"}},
        "spec": {"containers": [{"name": "server", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": "10.0.0.7", "conditions": [ready]},
    }
    assert is_ready(pod)
    assert metrics_url(pod) == "http://10.0.0.7:8080/m"  # the named http port wins over the annotation
    pod["spec"]["containers"][0]["ports"] = []
    assert metrics_url(pod) == "http://10.0.0.7:9100/m"
    pod["metadata"]["annotations"] = {}
    pod["status"]["podIP"] = "fd00::7"
    assert metrics_url(pod) == "http://[fd00::7]:8080/metrics"
    for broken in (
        {"phase": "Pending", "podIP": "10.0.0.7", "conditions": [ready]},
        {"phase": "Running", "conditions": [ready]},
        {"phase": "Running", "podIP": "10.0.0.7", "conditions": [{"type": "Ready", "status": "False"}]},
    ):
        assert not is_ready({**pod, "status": broken})
    assert not is_ready({**pod, "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}})


@pytest.mark.asyncio
async def test_missed_scrapes_of_a_busy_pod_and_a_lagging_deployment_keep_the_count(
    cluster: Any, metrics_pods: MetricsPods, controller: AutoscalerController
) -> None:
    """The whole-loop run's 3 -> 2 -> 1 under constant load: the one busy pod stops answering its
    scrapes while new pods start, and the Deployment as the watch delivered it still says 1 replica (the
    reconcile applying the decision lags). Its last value stands in for it, the stale count is not
    adopted: the count stays at 3."""
    windows = {
        "stableWindowSeconds": 8,
        "panicWindowSeconds": 4,
        "scaleDownDelaySeconds": 4,
        "tickSeconds": 1,
    }
    md = create_md(cluster, minReplicas=1, maxReplicas=3, target=2, **windows)
    create_deployment(cluster, md, replicas=1)
    serving = Serving(cluster, metrics_pods, capacity=1)
    serving.kubelet()
    serving.load(8.0)
    stale = cluster.get("apps/v1", "Deployment", "digits-predictor", NS)  # never updated below
    now = 0.0
    controller.clock = lambda: now
    desired = []
    for i in range(16):
        now = float(i)
        serving.fake[0].status = 200 if i < 2 or i % 5 == 0 else 503  # answers every 5th scrape
        result = await controller.tick(md, stale)
        assert result.decision is not None
        desired.append(result.decision.desired)
    assert desired == [3] * 16


@pytest.mark.asyncio
async def test_pods_from_the_watch_cache_cost_no_request(
    cluster: Any, metrics_pods: MetricsPods, controller: AutoscalerController
) -> None:
    md = create_md(cluster, minReplicas=1, maxReplicas=3, target=2)
    create_deployment(cluster, md, replicas=1)
    serving = Serving(cluster, metrics_pods, capacity=1)
    serving.kubelet()
    serving.load(1.0)
    deployment = cluster.get("apps/v1", "Deployment", "digits-predictor", NS)
    pods = cluster.pods(NS, {"trtforge.dev/modeldeployment": "digits"})
    stage_pod = {**pods[0], "metadata": {**pods[0]["metadata"], "name": "digits-train-x"}}
    stage_pod["metadata"]["labels"] = {
        **pods[0]["metadata"]["labels"],
        "app.kubernetes.io/component": "train",
    }
    before = controller.kube.requests
    result = await controller.tick(md, deployment, [*pods, stage_pod])
    assert controller.kube.requests == before  # neither the Deployment nor the pods were read
    assert [(s.pod, s.value) for s in result.scrapes] == [(pods[0]["metadata"]["name"], 1.0)]
