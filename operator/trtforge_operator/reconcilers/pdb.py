"""The PodDisruptionBudget of the serving pods, present only when more than one replica is wanted:
voluntary disruptions (node drains) then take at most one serving pod at a time."""

from __future__ import annotations

from typing import Any

from trtforge_operator import labels
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers.common import metadata
from trtforge_operator.reconcilers.deployment import COMPONENT


def wanted(plan: Plan) -> bool:
    serving = plan.spec.serving
    floor = serving.autoscaling.min_replicas if serving.autoscaling.enabled else serving.replicas
    return floor > 1


def pdb(plan: Plan) -> dict[str, Any] | None:
    if not wanted(plan):
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(plan, plan.predictor, COMPONENT, plan.serving),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": labels.predictor_selector(plan.owner.name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
