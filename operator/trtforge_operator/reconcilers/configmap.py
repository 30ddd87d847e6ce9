"""The ConfigMap that hands a stage the ModelDeployment it runs (`-f /etc/trtforge/modeldeployment.yaml`).

One per stage and revision, named like the stage's Job, so that a running Job never sees a later edit of
the spec and a rollback finds the manifest of the revision it returns to.
"""

from __future__ import annotations

from typing import Any

import yaml
from trtforge_runtime.spec.model import API_VERSION, KIND

from trtforge_operator import labels, naming
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers.common import MANIFEST_KEY, metadata


def manifest_text(plan: Plan) -> str:
    """The ModelDeployment as a stage reads it: the parsed spec with every default written out."""
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": plan.owner.name, "namespace": plan.owner.namespace},
        "spec": plan.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return yaml.safe_dump(doc, sort_keys=True)


def config_map(plan: Plan, stage: str, revision: str) -> dict[str, Any]:
    meta = metadata(plan, naming.config_map_name(plan.owner.name, stage, revision), stage, revision)
    meta["labels"][labels.STAGE] = stage
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {MANIFEST_KEY: manifest_text(plan)},
    }
