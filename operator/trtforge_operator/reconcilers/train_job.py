"""The training Job (`trtforge train` in the trainer image) and, for workers > 1, its headless Service.

Multi-worker training runs as an Indexed Job: pod i has hostname `<job>-<i>` under the headless Service
`<job>`, gets TRTFORGE_TF_CLUSTER (the JSON worker list) and JOB_COMPLETION_INDEX from Kubernetes, and
a small shell entry builds TF_CONFIG = {"cluster": $TRTFORGE_TF_CLUSTER, "task": {"type": "worker",
"index": $JOB_COMPLETION_INDEX}} before exec'ing `trtforge train`. Worker 0 is the chief: it writes the
artifact and the termination message the operator reads.

Custom training code (`spec.model.train.custom`) runs in the same Job, as a child process of `trtforge
train`, so it gets the same environment (TF_CONFIG, GPUs, the artifact store): the Job's image is
`custom.image` when set (an image with trtforge in it, built FROM the trainer image), else the trainer
image.
"""

from __future__ import annotations

import json
from typing import Any

from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers.common import metadata, placement, resources
from trtforge_operator.reconcilers.jobs import job, manifest_args

STAGE = "train"
TF_PORT = 12345
TF_CONFIG_SCRIPT = (
    'export TF_CONFIG="{\\"cluster\\": ${TRTFORGE_TF_CLUSTER}, '
    '\\"task\\": {\\"type\\": \\"worker\\", \\"index\\": ${JOB_COMPLETION_INDEX}}}"; exec trtforge "$@"'
)


def train_args(plan: Plan) -> list[str]:
    return ["train", *manifest_args(), "-o", plan.model_location.path, "--overwrite", "--progress", "lines"]


def worker_hosts(plan: Plan) -> list[str]:
    train = plan.spec.model.train
    assert train is not None
    job_name = plan.train_job
    return [f"{job_name}-{i}.{job_name}:{TF_PORT}" for i in range(train.workers)]


def train_image(plan: Plan) -> str:
    """The user's image for custom training code, else the operator's trainer image."""
    train = plan.spec.model.train
    custom = train.custom if train is not None else None
    return custom.image if custom is not None and custom.image else plan.settings.trainer_image


def train_job(plan: Plan) -> dict[str, Any]:
    train = plan.spec.model.train
    if train is None:
        raise ValueError("train_job needs spec.model.train")
    gpu = train.resources.gpus > 0
    args = train_args(plan)
    extra_env: list[dict[str, Any]] = []
    indexed = None
    if train.workers > 1:
        extra_env.append({"name": "TRTFORGE_TF_CLUSTER", "value": json.dumps({"worker": worker_hosts(plan)})})
        indexed = {"completions": train.workers, "subdomain": plan.train_job}
        args = ["-c", TF_CONFIG_SCRIPT, "trtforge", *args]
    manifest = job(
        plan,
        name=plan.train_job,
        stage=STAGE,
        revision=plan.training,
        image=train_image(plan),
        args=args,
        resources=resources(train.resources),
        placement=placement(plan, gpu=gpu),
        backoff_limit=train.backoff_limit,
        active_deadline_seconds=train.active_deadline_seconds,
        extra_env=extra_env,
        indexed=indexed,
    )
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    if train.workers > 1:
        container["command"] = ["/bin/sh"]
        container["ports"] = [{"name": "tf-worker", "containerPort": TF_PORT, "protocol": "TCP"}]
    else:
        container["command"] = ["trtforge"]
    return manifest


def train_service(plan: Plan) -> dict[str, Any] | None:
    """Headless Service giving each worker pod a stable DNS name; None for single-worker training."""
    train = plan.spec.model.train
    if train is None or train.workers <= 1:
        return None
    from trtforge_operator import labels

    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(plan, plan.train_job, STAGE, plan.training),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {labels.JOB: plan.train_job},
            "ports": [{"name": "tf-worker", "port": TF_PORT, "targetPort": TF_PORT, "protocol": "TCP"}],
        },
    }
