"""HPA and KEDA ScaledObject rendering: valid objects whose behaviour follows the spec's windows."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from trtforge_operator.autoscaling.hpa import PROMETHEUS_ADAPTER_RULES, quantity, render_hpa
from trtforge_operator.autoscaling.keda import render_scaled_object
from trtforge_operator.errors import AutoscalingError
from trtforge_runtime.spec.model import Autoscaling

K8S_VERSION = "1.35.0"
LABELS = {"app.kubernetes.io/instance": "digits", "trtforge.dev/modeldeployment": "digits"}


def spec(**fields: Any) -> Autoscaling:
    return Autoscaling.model_validate(fields)


def hpa(**fields: Any) -> dict[str, Any]:
    return render_hpa(
        name="digits-predictor",
        namespace="ml",
        deployment="digits-predictor",
        spec=spec(**fields),
        labels=LABELS,
    )


def scaled_object(**fields: Any) -> dict[str, Any]:
    return render_scaled_object(
        name="digits-predictor",
        namespace="ml",
        deployment="digits-predictor",
        spec=spec(**fields),
        labels=LABELS,
        prometheus_url="http://prometheus.monitoring.svc:9090",
    )


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"mode": "hpa", "metric": "rps", "target": 250, "minReplicas": 2, "maxReplicas": 40},
        {
            "target": 7.5,
            "stableWindowSeconds": 3600,
            "panicWindowSeconds": 3600,
            "scaleDownDelaySeconds": 600,
        },
        {"target": 0.25, "stableWindowSeconds": 1, "panicWindowSeconds": 1, "scaleDownDelaySeconds": 0},
    ],
)
def test_hpa_is_valid_autoscaling_v2(fields: dict[str, Any]) -> None:
    body = hpa(**fields)
    kubernetes_validate.validate(body, K8S_VERSION, strict=True)
    policies = body["spec"]["behavior"]["scaleUp"]["policies"]
    assert all(1 <= p["periodSeconds"] <= 1800 and p["value"] > 0 for p in policies)
    assert 0 <= body["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] <= 3600


def test_hpa_follows_the_spec() -> None:
    body = hpa(minReplicas=2, maxReplicas=12, target=8, stableWindowSeconds=60, panicWindowSeconds=6)
    s = body["spec"]
    assert s["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "digits-predictor"}
    assert (s["minReplicas"], s["maxReplicas"]) == (2, 12)
    assert s["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "trtforge_inflight_requests"},
                "target": {"type": "AverageValue", "averageValue": "8"},
            },
        }
    ]
    up, down = s["behavior"]["scaleUp"], s["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 0
    assert {"type": "Pods", "value": 12, "periodSeconds": 6} in up["policies"]
    assert down["stabilizationWindowSeconds"] == 60 + 30
    assert body["metadata"]["labels"] == LABELS
    rps = hpa(metric="rps", target=7.5)["spec"]["metrics"][0]["pods"]
    assert rps["metric"]["name"] == "trtforge_requests_per_second"
    assert rps["target"]["averageValue"] == "7500m"


def test_hpa_validation_catches_a_broken_object() -> None:
    """The validator used above does refuse what the API server would refuse."""
    body = hpa()
    del body["spec"]["scaleTargetRef"]["name"]
    body["spec"]["maxReplicas"] = "eight"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(body, K8S_VERSION, strict=True)


def test_quantity() -> None:
    assert quantity(8) == "8"
    assert quantity(8.0) == "8"
    assert quantity(0.5) == "500m"
    assert quantity(0.0001) == "1m"
    with pytest.raises(AutoscalingError, match="positive"):
        quantity(0)


def test_prometheus_adapter_rules_cover_both_metrics() -> None:
    names = {rule["name"]["as"] for rule in PROMETHEUS_ADAPTER_RULES}
    assert names == {"trtforge_inflight_requests", "trtforge_requests_per_second"}


# The parts of KEDA v2's ScaledObject CRD schema (keda.sh_scaledobjects.yaml) that the operator sets,
# closed with additionalProperties: false so that a misspelt field fails here and not in a cluster.
_POLICY = {
    "type": "object",
    "required": ["type", "value", "periodSeconds"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["Pods", "Percent"]},
        "value": {"type": "integer", "minimum": 1},
        "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
    },
}
_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {"type": "array", "minItems": 1, "items": _POLICY},
    },
}
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"scaleUp": _RULES, "scaleDown": _RULES},
                                },
                            },
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.parametrize("fields", [{}, {"metric": "rps", "target": 2.5, "tickSeconds": 0.5}])
def test_scaled_object_is_structurally_valid(fields: dict[str, Any]) -> None:
    body = scaled_object(**fields)
    jsonschema.validate(body, SCALED_OBJECT_SCHEMA)
    minimum = body["spec"]["minReplicaCount"]
    assert minimum <= body["spec"]["maxReplicaCount"]


def test_scaled_object_follows_the_spec() -> None:
    body = scaled_object(minReplicas=2, maxReplicas=6, target=8, tickSeconds=2)
    s = body["spec"]
    assert (s["minReplicaCount"], s["maxReplicaCount"], s["pollingInterval"]) == (2, 6, 2)
    assert s["scaleTargetRef"]["name"] == "digits-predictor"
    (trigger,) = s["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == "http://prometheus.monitoring.svc:9090"
    assert meta["threshold"] == "8"
    assert meta["query"] == (
        'sum(trtforge_inflight_requests{namespace="ml",pod=~"digits-predictor-[a-z0-9]+-[a-z0-9]+"})'
    )
    assert meta["ignoreNullValues"] == "false"
    assert (
        s["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa(maxReplicas=6)["spec"]["behavior"]
    )
    rps = scaled_object(metric="rps", target=2.5)["spec"]["triggers"][0]["metadata"]
    assert rps["query"].startswith("sum(rate(trtforge_requests_total{") and rps["query"].endswith("[1m]))")
    assert rps["threshold"] == "2.5"


def test_scaled_object_schema_catches_a_broken_object() -> None:
    body = scaled_object()
    body["spec"]["triggers"][0]["metadata"]["threshold"] = 8
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, SCALED_OBJECT_SCHEMA)


def test_bad_renderer_input_is_a_clear_error() -> None:
    with pytest.raises(AutoscalingError, match="TRTFORGE_PROMETHEUS_URL"):
        render_scaled_object(
            name="x", namespace="ml", deployment="x", spec=spec(), labels={}, prometheus_url="prometheus:9090"
        )
    with pytest.raises(AutoscalingError, match="not a DNS-1123 label"):
        render_scaled_object(
            name="x", namespace='ml"}', deployment="x", spec=spec(), labels={}, prometheus_url="http://p"
        )
    bad = Autoscaling.model_construct(min_replicas=5, max_replicas=2)
    with pytest.raises(AutoscalingError, match="minReplicas must be <= maxReplicas"):
        render_hpa(name="x", namespace="ml", deployment="x", spec=bad, labels={})
