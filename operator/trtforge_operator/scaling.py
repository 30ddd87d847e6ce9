"""Replica ownership in the reconcile: the built-in autoscaler's decisions, the hpa / keda children, and
a `kubectl scale md` that autoscaling overrides.

- builtin mode: the operator-level `AutoscalingLoop` decides, this applies (through the reconcile queue,
  so every write to a ModelDeployment's children happens in its one serialized reconcile);
- hpa / keda mode: the HorizontalPodAutoscaler / ScaledObject is an owned child kept in line here like
  the Service or the PodDisruptionBudget (created, patched, the previous mode's one deleted);
- autoscaling on and spec.serving.replicas set to something other than its default (what
  `kubectl scale md` writes through the scale subresource): status.message says the count is ignored
  and how to scale by hand, and a Warning Event `ScaleIgnored` says it once per value.
"""

from __future__ import annotations

from typing import Any

from trtforge_runtime.spec.model import Autoscaling, Serving

from trtforge_operator.apply import Kube
from trtforge_operator.autoscaling.children import ChildCache, ChildrenReconciler
from trtforge_operator.autoscaling.controller import Decisions, apply_decision
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers import deployment
from trtforge_operator.status import StatusBuilder

SCALE_IGNORED = "ScaleIgnored"  # the Event's reason
DEFAULT_REPLICAS = Serving.model_fields["replicas"].default


async def apply_builtin_decision(
    kube: Kube, plan: Plan, st: StatusBuilder, body: dict[str, Any], dep: dict[str, Any], decisions: Decisions
) -> dict[str, Any]:
    """Apply the autoscaler's pending decision for this ModelDeployment; returns the Deployment."""
    key = (plan.owner.namespace, plan.owner.name)
    decision = decisions.get(key)
    if decision is None:
        return dep
    if not deployment.autoscaling_active(plan) or str(plan.spec.serving.autoscaling.mode) != "builtin":
        decisions.pop(key, None)
        return dep
    if (dep.get("spec") or {}).get("replicas") != decision.desired:
        await apply_decision(kube, body, decision)
        dep = {**dep, "spec": {**(dep.get("spec") or {}), "replicas": decision.desired}}
    st.desired.setdefault("serving", {})["desiredReplicas"] = decision.desired
    if decisions.get(key) is decision:
        decisions.pop(key)
    return dep


async def reconcile_children(
    kube: Kube, plan: Plan, body: dict[str, Any], cache: ChildCache | None = None
) -> list[str]:
    """The hpa / keda child of the spec's mode exists and matches; the other mode's child is gone.

    `cache`: the watched children (the operator's watches), so that absent ones cost no request."""
    settings = plan.settings
    if not settings.autoscaler_enabled or not settings.autoscaler_modes:
        return []
    children = ChildrenReconciler(kube, settings.prometheus_url, modes=settings.autoscaler_modes)
    spec: Autoscaling = plan.spec.serving.autoscaling
    known = cache.known(plan.owner.namespace, plan.owner.name) if cache is not None else None
    return await children.reconcile(body, spec, known)


def ignored_scale(plan: Plan) -> str | None:
    """Why spec.serving.replicas is ignored (autoscaling owns the count), or None when it is not."""
    serving = plan.spec.serving
    if not deployment.autoscaling_active(plan) or serving.replicas == DEFAULT_REPLICAS:
        return None
    auto = serving.autoscaling
    return (
        f"spec.serving.replicas={serving.replicas} (kubectl scale md) is ignored: autoscaling (mode "
        f"{auto.mode}) owns the replica count, between minReplicas {auto.min_replicas} and "
        f"maxReplicas {auto.max_replicas}; set spec.serving.autoscaling.enabled=false to scale by hand"
    )
