"""The labels every child object carries, and the selectors derived from them.

`trtforge.dev/modeldeployment` ties a child to its ModelDeployment (the operator's child watches filter on
it); `trtforge.dev/revision` says which revision of the spec produced it; the `app.kubernetes.io/*` labels
follow the Kubernetes recommended-labels convention.
"""

from __future__ import annotations

from trtforge_runtime import __version__

MODELDEPLOYMENT = "trtforge.dev/modeldeployment"
REVISION = "trtforge.dev/revision"
STAGE = "trtforge.dev/stage"
JOB = "trtforge.dev/job"  # on Job pod templates: the Job's name (pods are found by it)
COMPUTE_CAPABILITY = "trtforge.dev/compute-capability"
MANAGED_BY = "trtforge-operator"
PART_OF = "trtforge"

# annotations
LAST_GOOD_TEMPLATE = "trtforge.dev/last-good-template"
LAST_GOOD_REVISION = "trtforge.dev/last-good-revision"
SPEC_HASH = "trtforge.dev/spec-hash"


def common(name: str, component: str, revision: str | None = None) -> dict[str, str]:
    """Labels of every object the operator creates for ModelDeployment `name`."""
    labels = {
        "app.kubernetes.io/name": "trtforge",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/version": __version__,
        MODELDEPLOYMENT: name,
    }
    if revision:
        labels[REVISION] = revision
    return labels


def predictor_selector(name: str) -> dict[str, str]:
    """The serving pods' selector: stable across revisions (a Deployment's selector is immutable)."""
    return {MODELDEPLOYMENT: name, "app.kubernetes.io/component": "predictor"}


def selector_string(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def owner_selector(name: str) -> str:
    """Label selector of every child of ModelDeployment `name`."""
    return f"{MODELDEPLOYMENT}={name}"
