"""Revision hashes and deterministic child names.

A revision is a short hash of exactly the spec parts that change a stage's output:

- training revision  = hash(spec.model, artifact store)          -> a new one retrains
- engine revision    = hash(training revision, spec.engine)       -> a new one reconverts
- serving revision   = hash(engine revision, the pod-changing parts of spec.serving, spec.placement,
                            server image)                         -> a new one rolls the pods

so a change that only touches serving neither retrains nor reconverts, and a change to training flows
downstream. Child names are built from the ModelDeployment's name and the revision, so an operator that
restarts finds what exists instead of creating duplicates; names longer than 63 characters are cut and
get a hash suffix so they stay unique.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from trtforge_runtime.spec.model import ModelDeploymentSpec

REVISION_LENGTH = 10
MAX_NAME = 63


def digest(data: Any, length: int = REVISION_LENGTH) -> str:
    """Hex digest of the canonical JSON of `data` (key order does not matter)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True) if model is not None else None


def training_revision(spec: ModelDeploymentSpec, storage_uri: str) -> str:
    return digest({"model": _dump(spec.model), "storage": storage_uri})


def engine_revision(training: str, spec: ModelDeploymentSpec) -> str:
    return digest({"training": training, "engine": _dump(spec.engine)})


def serving_revision(engine: str, spec: ModelDeploymentSpec, server_image: str) -> str:
    """Only what changes the serving pods' template: not replicas, autoscaling or rollout settings."""
    serving = spec.serving
    parts = {
        "engine": engine,
        "batching": _dump(serving.batching),
        "resources": _dump(serving.resources),
        "requestTimeoutSeconds": serving.request_timeout_seconds,
        "grpc": serving.grpc,
        "placement": _dump(spec.placement),
        "image": server_image,
    }
    return digest(parts)


def child_name(*parts: str, max_length: int = MAX_NAME) -> str:
    """`part1-part2-...`, cut to `max_length` with a hash suffix when longer (DNS-1123 label safe)."""
    full = "-".join(p for p in parts if p)
    if len(full) <= max_length:
        return full
    suffix = digest(full, 8)
    return f"{full[: max_length - len(suffix) - 1].rstrip('-')}-{suffix}"


def service_name(name: str) -> str:
    """The serving Service: the ModelDeployment's own name (a DNS-1035 label must start with a letter)."""
    return child_name(name if name[:1].isalpha() else f"md-{name}")


def predictor_name(name: str) -> str:
    return child_name(name, "predictor")


def train_job_name(name: str, revision: str) -> str:
    # Indexed Job pods are named `<job>-<index>-<random>`, their hostnames `<job>-<index>`: leave room.
    return child_name(name, "train", revision, max_length=MAX_NAME - 4)


def convert_job_name(name: str, revision: str, compute_capability: str | None) -> str:
    cc = f"sm{compute_capability.replace('.', '')}" if compute_capability else ""
    return child_name(name, "convert", revision, cc)


def config_map_name(name: str, stage: str, revision: str) -> str:
    return child_name(name, stage, revision)
