"""The batch/v1 Job shape shared by training and conversion: restricted pods, no restarts in place,
fail-fast on user errors (podFailurePolicy), termination message for the operator, TTL cleanup."""

from __future__ import annotations

from typing import Any

from trtforge_runtime.errors import permanent_exit_codes

from trtforge_operator import labels, naming, podsecurity
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers.common import (
    MANIFEST_PATH,
    TERMINATION_MESSAGE_PATH,
    config_mount,
    config_volume,
    job_env,
    metadata,
    pod_basics,
)
from trtforge_operator.storage import input_volumes

CONTAINER = "main"
# exit codes of trtforge that retrying cannot fix (bad manifest, dataset, quality/accuracy gate, artifact,
# conversion, training): the Job fails at once instead of burning its backoffLimit. Read from the one
# failure table on the error classes (trtforge_runtime.errors.failure_table).
PERMANENT_EXIT_CODES = permanent_exit_codes()


def job(
    plan: Plan,
    *,
    name: str,
    stage: str,
    revision: str,
    image: str,
    args: list[str],
    resources: dict[str, Any],
    placement: dict[str, Any],
    backoff_limit: int,
    active_deadline_seconds: int,
    extra_labels: dict[str, str] | None = None,
    extra_env: list[dict[str, Any]] | None = None,
    indexed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Job running `args` in `image`; `indexed` = {completions, subdomain} makes it an Indexed Job."""
    meta = metadata(plan, name, stage, revision)
    meta["labels"][labels.STAGE] = stage
    meta["labels"].update(extra_labels or {})
    pod_labels = dict(meta["labels"])
    pod_labels[labels.JOB] = name
    tmp_vol, tmp_mount = podsecurity.tmp_volume()
    in_vols, in_mounts = input_volumes(plan.spec)
    store = plan.store
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": plan.settings.image_pull_policy,
        "args": args,
        "env": job_env(plan) + list(extra_env or []),
        "resources": resources,
        "volumeMounts": [config_mount(), store.mount_spec(read_only=False), tmp_mount, *in_mounts],
        "securityContext": podsecurity.container_security_context(),
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if store.env_from():
        container["envFrom"] = store.env_from()
    pod_spec: dict[str, Any] = {
        **pod_basics(plan),
        "restartPolicy": "Never",
        **placement,
        "containers": [container],
        "volumes": [
            config_volume(naming.config_map_name(plan.owner.name, stage, revision)),
            store.volume(),
            tmp_vol,
            *in_vols,
        ],
    }
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": active_deadline_seconds,
        "ttlSecondsAfterFinished": plan.settings.job_ttl_seconds,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": PERMANENT_EXIT_CODES,
                    },
                },
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]
        },
        "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
    }
    if indexed:
        spec.update(
            completionMode="Indexed",
            completions=indexed["completions"],
            parallelism=indexed["completions"],
        )
        pod_spec["subdomain"] = indexed["subdomain"]
        spec["backoffLimitPerIndex"] = backoff_limit
        spec.pop("backoffLimit")
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def manifest_args() -> list[str]:
    return ["-f", MANIFEST_PATH]
