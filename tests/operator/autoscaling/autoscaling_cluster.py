"""Cluster-side helpers of the autoscaling tests: the digits ModelDeployment, the operator's own serving
Deployment, and a stand-in for the Deployment controller + kubelet whose pods are fake /metrics endpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from autoscaling_metrics_pods import FakePod, MetricsPods
from trtforge_operator.plan import Owner, Plan
from trtforge_operator.reconcilers.deployment import deployment as render_deployment
from trtforge_operator.settings import OperatorSettings
from trtforge_runtime.spec.load import parse_spec

REPO = Path(__file__).resolve().parents[3]
NS = "ml"
DEPLOYMENT = "digits-predictor"
TICK = 2.0


def create_md(cluster: Any, **autoscaling: Any) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    doc["metadata"]["namespace"] = NS
    doc["spec"]["serving"]["autoscaling"].update(autoscaling)
    return dict(cluster.create(doc))


def create_deployment(cluster: Any, md: dict[str, Any], replicas: int) -> None:
    meta = md["metadata"]
    owner = Owner(name=meta["name"], namespace=NS, uid=meta["uid"])
    plan = Plan.build(owner, parse_spec(md["spec"]), OperatorSettings())
    cluster.create(render_deployment(plan, replicas))


class Serving:
    """Plays the Deployment controller + kubelet: spec.replicas ready pods, pod i served by fake pod i."""

    def __init__(self, cluster: Any, pods: MetricsPods, capacity: int) -> None:
        self.cluster = cluster
        self.fake = [pods.add(f"runtime-{i}") for i in range(capacity)]
        self.assigned: dict[str, int] = {}  # emulator pod name -> index of its fake endpoint
        self.total = 0.0

    def replicas(self) -> int:
        return int(self.cluster.get("apps/v1", "Deployment", DEPLOYMENT, NS)["spec"]["replicas"])

    def kubelet(self) -> int:
        """Roll out spec.replicas pods; each pod keeps its fake endpoint for life (as a pod keeps its IP)."""
        self.cluster.make_deployment_ready(NS, DEPLOYMENT)  # creates / removes pods
        pods = self.cluster.pods(NS, {"trtforge.dev/modeldeployment": "digits"})
        pods.sort(key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"])  # helper's order
        names = [p["metadata"]["name"] for p in pods]
        self.assigned = {name: i for name, i in self.assigned.items() if name in names}
        free = [i for i in range(len(self.fake)) if i not in self.assigned.values()]
        for name in names:
            if name not in self.assigned:
                self.assigned[name] = free.pop(0)
        ports = [self.fake[self.assigned[name]].port for name in names]
        self.cluster.make_deployment_ready(NS, DEPLOYMENT, container_port=ports)
        self.load(self.total)
        return len(names)

    def serving_fakes(self) -> list[FakePod]:
        return [self.fake[i] for i in self.assigned.values()]

    def load(self, total: float) -> None:
        self.total = total
        live = self.serving_fakes()
        for pod in self.fake:
            pod.inflight = total / len(live) if pod in live else 0.0
