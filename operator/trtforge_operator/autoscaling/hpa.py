"""The hpa mode: a pure rendering of the spec into an autoscaling/v2 HorizontalPodAutoscaler.

The HPA scales the serving Deployment on a Pods metric served by prometheus-adapter from the runtime's
own metrics: `trtforge_inflight_requests` (the in-flight gauge) for `metric: concurrency`, or
`trtforge_requests_per_second` (a rate rule over `trtforge_requests_total`) for `metric: rps`, each with
an AverageValue target of `target` per pod. `PROMETHEUS_ADAPTER_RULES` holds the adapter rules that
expose both. Its `behavior` mirrors the built-in autoscaler's windows:

- scale-up: no stabilization; within one panic window it may grow tenfold or straight to maxReplicas
  (the built-in panic mode's "scale up at once");
- scale-down: stabilized over stableWindowSeconds + scaleDownDelaySeconds (the time the built-in mode
  takes to fall back fully: its window average decays over the stable window, then the lower count
  must hold for the delay), capped at the API's 3600 s.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from trtforge_operator.errors import AutoscalingError

if TYPE_CHECKING:
    from trtforge_runtime.spec.model import Autoscaling

INFLIGHT_METRIC = "trtforge_inflight_requests"
RPS_METRIC = "trtforge_requests_per_second"
MAX_STABILIZATION_SECONDS = 3600  # autoscaling/v2 limit
MAX_POLICY_PERIOD_SECONDS = 1800  # autoscaling/v2 limit
SCALE_UP_PERCENT = 1000

# prometheus-adapter rules (values.yaml `rules.custom`) that serve the two Pods metrics above.
PROMETHEUS_ADAPTER_RULES: list[dict[str, Any]] = [
    {
        "seriesQuery": 'trtforge_inflight_requests{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^trtforge_inflight_requests$", "as": INFLIGHT_METRIC},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    },
    {
        "seriesQuery": 'trtforge_requests_total{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^trtforge_requests_total$", "as": RPS_METRIC},
        "metricsQuery": "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)",
    },
]


def quantity(value: float) -> str:
    """A Kubernetes quantity for a positive number: "8" or, for fractions, milli-units ("7500m")."""
    if not (math.isfinite(value) and value > 0):
        raise AutoscalingError(f"autoscaling target must be a positive number, got {value}")
    if float(value).is_integer():
        return str(int(value))
    return f"{max(1, round(value * 1000))}m"


def pods_metric_name(spec: Autoscaling) -> str:
    return INFLIGHT_METRIC if str(spec.metric) == "concurrency" else RPS_METRIC


def behavior(spec: Autoscaling) -> dict[str, Any]:
    """autoscaling/v2 HorizontalPodAutoscalerBehavior equivalent to the built-in windows."""
    period = max(1, min(MAX_POLICY_PERIOD_SECONDS, spec.panic_window_seconds))
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": SCALE_UP_PERCENT, "periodSeconds": period},
                {"type": "Pods", "value": spec.max_replicas, "periodSeconds": period},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": min(
                MAX_STABILIZATION_SECONDS, spec.stable_window_seconds + spec.scale_down_delay_seconds
            ),
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }


def render_hpa(
    *, name: str, namespace: str, deployment: str, spec: Autoscaling, labels: dict[str, str]
) -> dict[str, Any]:
    """The desired HorizontalPodAutoscaler (owner references are the apply layer's business)."""
    if spec.min_replicas > spec.max_replicas:
        raise AutoscalingError(
            f"minReplicas must be <= maxReplicas, got {spec.min_replicas} > {spec.max_replicas}"
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": pods_metric_name(spec)},
                        "target": {"type": "AverageValue", "averageValue": quantity(spec.target)},
                    },
                }
            ],
            "behavior": behavior(spec),
        },
    }
