"""Artifact storage per namespace: the default store's claim is created where the ModelDeployment lives
(before any Job), survives the ModelDeployment, and a claim that is missing fails the object at once,
naming the claim and the namespace; creating the claim then resumes it (the claims are watched)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kube_emulator.helpers import Kube
from test_integration import MD, NS, conditions, digits, jobs, wait_jobs, wait_phase

CLAIM = "trtforge-artifacts"


def test_the_claim_is_created_in_the_objects_namespace_and_outlives_it(
    cluster: Kube, operator_with: Any
) -> None:
    operator_with(
        TRTFORGE_CLAIM_SIZE="50Gi",
        TRTFORGE_CLAIM_ACCESS_MODE="ReadWriteMany",
        TRTFORGE_CLAIM_STORAGE_CLASS="efs-sc",
        TRTFORGE_CLAIM_ANNOTATIONS='{"backup.example.com/enabled": "true"}',
    )
    assert cluster.get("v1", "PersistentVolumeClaim", CLAIM, NS) is None
    cluster.apply(digits())
    (train,) = wait_jobs(cluster, "train")
    claim = cluster.get("v1", "PersistentVolumeClaim", CLAIM, NS)
    assert claim is not None
    assert claim["metadata"]["creationTimestamp"] <= train["metadata"]["creationTimestamp"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "efs-sc"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["metadata"]["annotations"]["backup.example.com/enabled"] == "true"
    assert not claim["metadata"].get("ownerReferences")  # the namespace's, not the ModelDeployment's
    volumes = train["spec"]["template"]["spec"]["volumes"]
    assert {"name": "artifacts", "persistentVolumeClaim": {"claimName": CLAIM}} in volumes

    cluster.delete(*MD, "digits", NS)
    cluster.wait_for(lambda: not jobs(cluster, "train"), message="children garbage-collected")
    assert cluster.get("v1", "PersistentVolumeClaim", CLAIM, NS) is not None  # artifacts kept


def test_an_existing_claim_is_used_as_it_is(cluster: Kube, operator_with: Any) -> None:
    mine = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": NS, "labels": {"owner": "me"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.create(mine, NS)
    operator_with(TRTFORGE_CLAIM_SIZE="50Gi")
    cluster.apply(digits())
    wait_jobs(cluster, "train")
    claim = cluster.get("v1", "PersistentVolumeClaim", CLAIM, NS)
    assert claim is not None and claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert claim["metadata"]["labels"] == {"owner": "me"}


@pytest.mark.parametrize(
    ("env", "changes", "field", "claim"),
    [
        ({"TRTFORGE_CLAIM_CREATE": "false"}, {}, "spec.storage.uri", CLAIM),
        ({}, {"storage": {"uri": "pvc://team-models/x/"}}, "spec.storage.uri", "team-models"),
        ({}, {"model.train.dataset.uri": "pvc://datasets/digits.npz"}, "spec.model", "datasets"),
    ],
)
def test_a_missing_claim_fails_before_any_job_and_its_creation_resumes_the_object(
    cluster: Kube, operator_with: Any, env: dict[str, str], changes: dict[str, Any], field: str, claim: str
) -> None:
    # no resync within the test: only the claim's watch event can resume the object
    operator_with(TRTFORGE_RESYNC_SECONDS="3600", **env)
    cluster.apply(digits(**changes))
    obj = wait_phase(cluster, "Failed")
    message = obj["status"]["message"]
    assert message.startswith(field) and f"PersistentVolumeClaim {NS}/{claim} does not exist" in message
    assert conditions(obj)["Degraded"]["reason"] == "InvalidSpec"
    assert not jobs(cluster, "train")

    time.sleep(2)  # let the reconciles already queued (start-up listing, leadership) run out first
    assert wait_phase(cluster, "Failed") and not jobs(cluster, "train")
    other = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "unrelated"}}
    other["spec"] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    cluster.create(other, NS)  # a claim nobody mounts changes nothing
    cluster.create({**other, "metadata": {"name": claim}}, NS)
    # the product's promise is "within a second"; the wait only guards against a hang (the resync is
    # an hour away, so the Job can only come from the claim's watch event)
    (train,) = wait_jobs(cluster, "train")
    volumes = train["spec"]["template"]["spec"]["volumes"]
    assert any((v.get("persistentVolumeClaim") or {}).get("claimName") == claim for v in volumes)
    assert wait_phase(cluster, "Training")["status"].get("reason") != "InvalidSpec"
