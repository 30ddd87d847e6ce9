"""The serving Service: a stable in-cluster endpoint (named like the ModelDeployment) for every revision."""

from __future__ import annotations

from typing import Any

from trtforge_operator import labels
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers.common import metadata
from trtforge_operator.reconcilers.deployment import COMPONENT, GRPC_PORT, HTTP_PORT


def service(plan: Plan) -> dict[str, Any]:
    ports = [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}]
    if plan.spec.serving.grpc:
        ports.append(
            {
                "name": "grpc",
                "port": GRPC_PORT,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "grpc",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(plan, plan.service, COMPONENT, plan.serving),
        "spec": {"type": "ClusterIP", "selector": labels.predictor_selector(plan.owner.name), "ports": ports},
    }
