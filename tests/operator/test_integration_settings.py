"""Operator settings that change behaviour end to end: the autoscaler modes the operator serves, the
default S3 credentials Secret, and an operator with its autoscaler switched off."""

from __future__ import annotations

import time
from typing import Any

from kube_emulator.helpers import Kube
from test_integration import MD, NS, conditions, digits, drive_to_ready, jobs, md, wait_jobs, wait_phase


def test_disabled_autoscaling_mode_fails_and_default_storage_secret_is_used(
    cluster: Kube, operator_with: Any
) -> None:
    op = operator_with(TRTFORGE_AUTOSCALER_MODES="", TRTFORGE_STORAGE_SECRET="s3-default")
    cluster.apply(digits(**{"serving.autoscaling.mode": "keda"}))
    obj = wait_phase(cluster, "Failed")
    message = obj["status"]["message"]
    assert message.startswith("spec.serving.autoscaling.mode")
    assert "TRTFORGE_AUTOSCALER_MODES" in message and "'keda'" in message
    assert conditions(obj)["Degraded"]["reason"] == "InvalidSpec"
    assert not jobs(cluster, "train")
    rv = obj["metadata"]["resourceVersion"]
    time.sleep(1.0)
    assert md(cluster)["metadata"]["resourceVersion"] == rv  # no hot loop

    # builtin mode on an s3 store without spec.storage.secretRef: the default Secret must exist ...
    patch = {"spec": {"serving": {"autoscaling": {"mode": "builtin"}}, "storage": {"uri": "s3://bucket/x"}}}
    cluster.patch(*MD, "digits", patch, NS)
    obj = cluster.wait_for(
        lambda: (o := md(cluster))["status"].get("message", "").startswith("spec.storage.secretRef") and o,
        message="Failed on the missing default Secret",
    )
    assert "Secret ml/s3-default does not exist" in obj["status"]["message"]
    assert "TRTFORGE_STORAGE_SECRET" in obj["status"]["message"]
    # ... and once it does, the Jobs get it as environment
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-default", "namespace": NS},
            "data": {},
        }
    )
    cluster.patch(*MD, "digits", {"spec": {"model": {"train": {"epochs": 3}}}}, NS)
    (train,) = wait_jobs(cluster, "train")
    container = train["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-default"}}]
    assert "Traceback" not in op.log()


def test_operator_without_autoscaler_applies_spec_replicas(cluster: Kube, operator_with: Any) -> None:
    op = operator_with(TRTFORGE_AUTOSCALER_ENABLED="false")
    doc = digits(**{"serving.replicas": 2})
    assert doc["spec"]["serving"]["autoscaling"].get("enabled", True) is not False
    cluster.apply(doc)
    drive_to_ready(cluster)
    assert cluster.get("apps/v1", "Deployment", "digits-predictor", NS)["spec"]["replicas"] == 2
    cluster.kubectl("scale", "md", "digits", "-n", NS, "--replicas=3")
    cluster.wait_for(
        lambda: cluster.get("apps/v1", "Deployment", "digits-predictor", NS)["spec"]["replicas"] == 3,
        message="Deployment scaled to 3 through the ModelDeployment's scale subresource",
    )
    assert "Traceback" not in op.log()
