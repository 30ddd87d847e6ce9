"""The labels every child object carries, and the selectors derived from them.

`trtforge.dev/modeldeployment` ties a child to its ModelDeployment (the operator's child watches filter on
it); `trtforge.dev/revision` says which revision of the spec produced it; the `app.kubernetes.io/*` labels
follow the Kubernetes recommended-labels convention.
"""

from __future__ import annotations

import hashlib
import re

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


LABEL_VALUE_MAX = 63
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_INVALID = re.compile(r"[^-A-Za-z0-9_.]+")


def value(text: str) -> str:
    """`text` as a valid label value: itself when it is one, else cleaned, cut and given a hash suffix.

    A label value is at most 63 characters of alphanumerics, '-', '_' and '.', starting and ending with an
    alphanumeric (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/). The CRD keeps
    ModelDeployment names within that, so this only changes names of objects created without it; the
    hash keeps two long names that share a prefix apart.
    """
    if len(text) <= LABEL_VALUE_MAX and _LABEL_VALUE.match(text):
        return text
    suffix = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = _INVALID.sub("-", text)[: LABEL_VALUE_MAX - len(suffix) - 1]
    head = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", head)
    return f"{head}-{suffix}" if head else suffix


def common(name: str, component: str, revision: str | None = None) -> dict[str, str]:
    """Labels of every object the operator creates for ModelDeployment `name`."""
    labels = {
        "app.kubernetes.io/name": "trtforge",
        "app.kubernetes.io/instance": value(name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/version": __version__,
        MODELDEPLOYMENT: value(name),
    }
    if revision:
        labels[REVISION] = revision
    return labels


def predictor_selector(name: str) -> dict[str, str]:
    """The serving pods' selector: stable across revisions (a Deployment's selector is immutable)."""
    return {MODELDEPLOYMENT: value(name), "app.kubernetes.io/component": "predictor"}


def selector_string(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def owner_selector(name: str) -> str:
    """Label selector of every child of ModelDeployment `name`."""
    return f"{MODELDEPLOYMENT}={value(name)}"
