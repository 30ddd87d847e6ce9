"""The keda mode: a pure rendering of the spec into a KEDA ScaledObject with a Prometheus trigger.

The trigger's query sums the runtime's metric over the serving Deployment's pods (Prometheus' usual
`namespace` and `pod` target labels); with `metricType: AverageValue` KEDA's HPA divides it by the
replica count, so the result is again desired = ceil(total / target). `ignoreNullValues: "false"` makes an
empty answer an error, which keeps the current count instead of shrinking to minReplicas (the built-in
mode's "no data is not zero"). The HPA behavior KEDA creates is the one of `hpa.behavior`.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from trtforge_operator.autoscaling.hpa import behavior
from trtforge_operator.errors import AutoscalingError

if TYPE_CHECKING:
    from trtforge_runtime.spec.model import Autoscaling

API_VERSION = "keda.sh/v1alpha1"
KIND = "ScaledObject"
GROUP, VERSION = API_VERSION.split("/")
PLURAL = "scaledobjects"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def threshold(value: float) -> str:
    if not (math.isfinite(value) and value > 0):
        raise AutoscalingError(f"autoscaling target must be a positive number, got {value}")
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def query(spec: Autoscaling, namespace: str, deployment: str) -> str:
    """PromQL of the Deployment's total load: in-flight requests, or requests per second."""
    for what, value in (("namespace", namespace), ("deployment", deployment)):
        if not DNS_LABEL.match(value):  # also keeps the PromQL string free of quotes and escapes
            raise AutoscalingError(f"{what} {value!r} is not a DNS-1123 label")
    matchers = f'namespace="{namespace}",pod=~"{deployment}-[a-z0-9]+-[a-z0-9]+"'
    if str(spec.metric) == "concurrency":
        return f"sum(trtforge_inflight_requests{{{matchers}}})"
    return f"sum(rate(trtforge_requests_total{{{matchers}}}[1m]))"


def render_scaled_object(
    *,
    name: str,
    namespace: str,
    deployment: str,
    spec: Autoscaling,
    labels: dict[str, str],
    prometheus_url: str,
) -> dict[str, Any]:
    """The desired ScaledObject (owner references are the apply layer's business)."""
    if spec.min_replicas > spec.max_replicas:
        raise AutoscalingError(
            f"minReplicas must be <= maxReplicas, got {spec.min_replicas} > {spec.max_replicas}"
        )
    if not re.match(r"^https?://[^\s]+$", prometheus_url):
        raise AutoscalingError(f"TRTFORGE_PROMETHEUS_URL must be an http(s) URL, got {prometheus_url!r}")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "pollingInterval": max(1, math.ceil(spec.tick_seconds)),
            "minReplicaCount": spec.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "advanced": {
                "restoreToOriginalReplicaCount": False,
                "horizontalPodAutoscalerConfig": {"behavior": behavior(spec)},
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "name": f"trtforge-{spec.metric}",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": query(spec, namespace, deployment),
                        "threshold": threshold(spec.target),
                        "ignoreNullValues": "false",
                    },
                }
            ],
        },
    }
