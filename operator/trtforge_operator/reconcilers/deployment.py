"""The serving Deployment: `trtforge serve` pods on the engine folder, rolled out revision by revision.

HTTP (V2 REST + /metrics) on 8080, gRPC on 8081; readiness on /v2/health/ready (the runtime is ready only
once its engine loaded and reproduced the reference sample), liveness on /v2/health/live, a startup probe
that gives engine loading time; Prometheus scrape annotations; RollingUpdate from spec.serving.rollout.
One server process per whole CPU of the limit (TRTFORGE_WORKERS); on SIGTERM the runtime fails readiness
at once and keeps serving for a shutdown delay before it drains (no preStop hook needed), and the grace
period outlasts delay + drain.

Replicas: with autoscaling disabled the Deployment runs spec.serving.replicas (which `kubectl scale md`
sets through the scale subresource). With autoscaling enabled (any mode) the autoscaler owns the count:
a new Deployment starts at status.serving.desiredReplicas (else minReplicas) and an existing one keeps
its replicas (`replicas=None` leaves the field out of the desired manifest). When the operator runs with
TRTFORGE_AUTOSCALER_ENABLED=false no autoscaler of any mode exists, so spec.serving.replicas applies
whatever spec.serving.autoscaling says (`autoscaling_active` is False; status says so).
"""

from __future__ import annotations

import math
from typing import Any

from trtforge_operator import labels, naming, podsecurity
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers.common import (
    CONFIG_DIR,
    MANIFEST_KEY,
    config_mount,
    config_volume,
    metadata,
    placement,
    pod_basics,
    resources,
)

STAGE = "serve"
COMPONENT = "predictor"
HTTP_PORT = 8080
GRPC_PORT = 8081
CONTAINER = "server"
# SIGTERM -> not ready at once, serve SHUTDOWN_DELAY_SECONDS more (kube-proxy, ingress controllers and meshes
# drop the endpoint meanwhile), then drain in-flight requests for at most the request timeout; the grace
# period covers both plus GRACE_MARGIN_SECONDS, so the kubelet's SIGKILL never cuts a request short.
SHUTDOWN_DELAY_SECONDS = 5
GRACE_MARGIN_SECONDS = 5


def cpu_workers(cpu: str | int | float) -> int:
    """Server processes for a CPU limit: whole cores, at least one (as the runtime's own default)."""
    text = str(cpu).strip()
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return 1
    return max(1, math.floor(cores + 1e-9))


def shutdown_timing(plan: Plan) -> tuple[int, int, int]:
    """(shutdown delay, drain timeout, terminationGracePeriodSeconds) of the serving pods."""
    drain = math.ceil(plan.spec.serving.request_timeout_seconds)
    return SHUTDOWN_DELAY_SECONDS, drain, SHUTDOWN_DELAY_SECONDS + drain + GRACE_MARGIN_SECONDS


def autoscaling_active(plan: Plan) -> bool:
    """True when an autoscaler owns the replicas: the spec enables it and so does the operator."""
    return plan.spec.serving.autoscaling.enabled and plan.settings.autoscaler_enabled


def desired_replicas(plan: Plan, existing: dict[str, Any] | None, status_desired: int | None) -> int | None:
    """The replica count to write, or None to leave the existing Deployment's count alone."""
    serving = plan.spec.serving
    if not autoscaling_active(plan):
        return serving.replicas
    if existing is not None:
        return None
    if status_desired is not None:
        lo, hi = serving.autoscaling.min_replicas, serving.autoscaling.max_replicas
        return max(lo, min(hi, status_desired))
    return serving.autoscaling.min_replicas


def pod_template(plan: Plan) -> dict[str, Any]:
    serving = plan.spec.serving
    pod_labels = labels.common(plan.owner.name, COMPONENT, plan.serving)
    pod_labels.update(labels.predictor_selector(plan.owner.name))
    tmp_vol, tmp_mount = podsecurity.tmp_volume()
    store = plan.store
    args = [
        "serve",
        "--engine",
        plan.engine_location.path,
        "--name",
        plan.owner.name,
        "--port",
        str(HTTP_PORT),
        "--grpc-port",
        str(GRPC_PORT if serving.grpc else 0),
        "-f",
        f"{CONFIG_DIR}/{MANIFEST_KEY}",
    ]
    delay, drain, grace = shutdown_timing(plan)
    ports = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    if serving.grpc:
        ports.append({"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"})
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": plan.settings.server_image,
        "imagePullPolicy": plan.settings.image_pull_policy,
        "command": ["trtforge"],
        "args": args,
        "ports": ports,
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "TRTFORGE_MODELDEPLOYMENT", "value": plan.owner.name},
            {"name": "TRTFORGE_REVISION", "value": plan.serving},
            {"name": "TRTFORGE_SHUTDOWN_DELAY_SECONDS", "value": str(delay)},
            {"name": "TRTFORGE_DRAIN_TIMEOUT_SECONDS", "value": str(drain)},
            {"name": "TRTFORGE_WORKERS", "value": str(cpu_workers(serving.resources.cpu))},
        ],
        "resources": resources(serving.resources),
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 6,
        },
        "startupProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "volumeMounts": [config_mount(), store.mount_spec(read_only=True), tmp_mount],
        "securityContext": podsecurity.container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if store.env_from():
        container["envFrom"] = store.env_from()
    spec: dict[str, Any] = {
        **pod_basics(plan),
        **placement(plan, gpu=serving.resources.gpus > 0),
        "terminationGracePeriodSeconds": grace,
        "containers": [container],
        "volumes": [
            config_volume(naming.config_map_name(plan.owner.name, STAGE, plan.serving)),
            store.volume(),
            tmp_vol,
        ],
    }
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(HTTP_PORT),
        "prometheus.io/path": "/metrics",
    }
    return {"metadata": {"labels": pod_labels, "annotations": annotations}, "spec": spec}


def deployment(plan: Plan, replicas: int | None) -> dict[str, Any]:
    rollout = plan.spec.serving.rollout
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels.predictor_selector(plan.owner.name)},
        "revisionHistoryLimit": plan.spec.revision_history_limit,
        "progressDeadlineSeconds": rollout.progress_deadline_seconds,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": rollout.max_surge, "maxUnavailable": rollout.max_unavailable},
        },
        "template": pod_template(plan),
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(plan, plan.predictor, COMPONENT, plan.serving),
        "spec": spec,
    }


def template_revision(deployment: dict[str, Any] | None) -> str | None:
    """The serving revision of a Deployment's pod template."""
    if not deployment:
        return None
    tmpl_labels = deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
    rev = tmpl_labels.get(labels.REVISION)
    return str(rev) if rev else None
