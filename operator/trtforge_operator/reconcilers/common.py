"""Pieces shared by the pod-creating reconcilers: metadata, resources, placement, Job environment."""

from __future__ import annotations

from typing import Any

from trtforge_runtime.artifacts import TERMINATION_MESSAGE_ENV
from trtforge_runtime.spec.model import Resources

from trtforge_operator import labels, podsecurity
from trtforge_operator.plan import Plan
from trtforge_operator.storage import PVC_ROOT, PVC_ROOT_ENV

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_MAJOR_LABEL = "nvidia.com/gpu.compute.major"
GPU_MINOR_LABEL = "nvidia.com/gpu.compute.minor"
CONFIG_VOLUME = "manifest"
CONFIG_DIR = "/etc/trtforge"
MANIFEST_KEY = "modeldeployment.yaml"
MANIFEST_PATH = f"{CONFIG_DIR}/{MANIFEST_KEY}"


def metadata(
    plan: Plan, name: str, component: str, revision: str, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": plan.owner.namespace,
        "labels": labels.common(plan.owner.name, component, revision),
        "ownerReferences": [plan.owner.reference()],
    }
    if annotations:
        meta["annotations"] = annotations
    return meta


def resources(res: Resources, *, gpus: int | None = None) -> dict[str, Any]:
    """Requests = limits (Guaranteed QoS); `gpus` overrides the spec's GPU count when given."""
    cpu, memory = str(res.cpu), str(res.memory)
    limits: dict[str, Any] = {"cpu": cpu, "memory": memory}
    n = res.gpus if gpus is None else gpus
    if n > 0:
        limits[GPU_RESOURCE] = str(n)
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}


def placement(plan: Plan, *, gpu: bool, node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """nodeSelector and tolerations from spec.placement (+ the GPU taint toleration for GPU pods)."""
    out: dict[str, Any] = {}
    selector = dict(plan.spec.placement.node_selector)
    selector.update(node_selector or {})
    if selector:
        out["nodeSelector"] = selector
    tolerations = [
        t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in plan.spec.placement.tolerations
    ]
    if gpu and not any(t.get("key") == GPU_RESOURCE for t in tolerations):
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        out["tolerations"] = tolerations
    return out


def pod_basics(plan: Plan) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": plan.settings.workload_service_account,
        "automountServiceAccountToken": False,
        "securityContext": podsecurity.pod_security_context(),
    }
    if plan.settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in plan.settings.image_pull_secrets]
    return spec


def config_volume(config_map: str) -> dict[str, Any]:
    return {"name": CONFIG_VOLUME, "configMap": {"name": config_map}}


def config_mount() -> dict[str, Any]:
    return {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True}


def job_env(plan: Plan) -> list[dict[str, Any]]:
    """Environment of every Job container (the termination-message contract, input claims, store)."""
    return [
        {"name": TERMINATION_MESSAGE_ENV, "value": TERMINATION_MESSAGE_PATH},
        {"name": PVC_ROOT_ENV, "value": PVC_ROOT},
        {"name": "TRTFORGE_ARTIFACTS_MOUNT", "value": plan.settings.artifacts_mount},
        {"name": "TRTFORGE_MODELDEPLOYMENT", "value": plan.owner.name},
        {"name": "HOME", "value": "/tmp"},
    ]
