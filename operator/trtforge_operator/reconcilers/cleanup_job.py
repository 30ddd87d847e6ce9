"""The artifact cleanup Job, run when a ModelDeployment with spec.storage.retainOnDelete: false is deleted.

It removes the ModelDeployment's folder (`PREFIX/NAMESPACE/NAME`: every model and engine revision) from
the artifact PersistentVolumeClaim. The Job is deliberately not owned by the ModelDeployment (it would
be garbage-collected with it) and removes itself after ttlSecondsAfterFinished. Objects in s3:// stores
are not deleted by the operator (use a bucket lifecycle rule); `supported()` says which stores apply.
"""

from __future__ import annotations

from typing import Any

from trtforge_operator import labels, naming, podsecurity
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers.common import pod_basics

STAGE = "cleanup"
TTL_SECONDS = 600
SCRIPT = "import shutil, sys\nfor path in sys.argv[1:]:\n    shutil.rmtree(path, ignore_errors=True)\n"


def supported(plan: Plan) -> bool:
    return plan.store.scheme == "pvc"


def folder(plan: Plan) -> str:
    return plan.store.location(plan.owner.namespace, plan.owner.name).path


def cleanup_job(plan: Plan) -> dict[str, Any]:
    name = naming.child_name(plan.owner.name, STAGE, plan.owner.uid[:8])
    meta_labels = labels.common(plan.owner.name, STAGE)
    meta_labels[labels.STAGE] = STAGE
    tmp_vol, tmp_mount = podsecurity.tmp_volume()
    store = plan.store
    container = {
        "name": "main",
        "image": plan.settings.server_image,
        "imagePullPolicy": plan.settings.image_pull_policy,
        "command": ["python", "-c", SCRIPT, folder(plan)],
        "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "volumeMounts": [store.mount_spec(read_only=False), tmp_mount],
        "securityContext": podsecurity.container_security_context(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": plan.owner.namespace, "labels": meta_labels},
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": 3600,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {
                "metadata": {"labels": meta_labels},
                "spec": {
                    **pod_basics(plan),
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [store.volume(), tmp_vol],
                },
            },
        },
    }
