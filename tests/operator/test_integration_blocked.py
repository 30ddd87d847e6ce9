"""With all namespaces watched the operator has no Secret rights: a missing Secret shows as the Job pod's
CreateContainerConfigError, which fails the ModelDeployment (naming the Secret) until the pod can start."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_emulator.helpers import Kube
from operator_process import OperatorProcess
from test_integration import CONVERT_OK, NS, TRAIN_OK, conditions, digits, md, wait_jobs, wait_phase


@pytest.fixture
def clusterwide_operator(cluster: Kube, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log", env={"TRTFORGE_WATCH_NAMESPACES": ""})
    yield op.start()
    op.stop()


def _pod(cluster: Kube, job: dict[str, Any], state: dict[str, Any]) -> None:
    name = f"{job['metadata']['name']}-x1"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        # the template's labels, as the job controller gives them (the operator watches its children's pods)
        "metadata": {"name": name, "labels": dict(job["spec"]["template"]["metadata"]["labels"])},
        "spec": {"containers": [{"name": "main", "image": "ghcr.io/trtforge/trainer:0.1.0"}]},
    }
    if cluster.get("v1", "Pod", name, NS) is None:
        cluster.create(pod, NS)
    cluster.set_status("v1", "Pod", name, {"phase": "Pending", "containerStatuses": [
        {"name": "main", "ready": False, "restartCount": 0, "image": "x", "imageID": "", "state": state}
    ]}, NS)  # fmt: skip


def test_a_missing_secret_fails_the_object_until_the_pod_can_start(
    cluster: Kube, clusterwide_operator: OperatorProcess
) -> None:
    cluster.apply(digits(storage={"uri": "s3://bucket/x/", "secretRef": {"name": "s3-creds"}}))
    (train,) = wait_jobs(cluster, "train")  # no Secret check: the Job is created
    cluster.start_job(NS, train["metadata"]["name"])
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "s3-creds" not found'}
    _pod(cluster, train, {"waiting": waiting})
    cluster.patch("batch/v1", "Job", train["metadata"]["name"], {"metadata": {"labels": {"poke": "1"}}}, NS)
    obj = wait_phase(cluster, "Failed")
    assert conditions(obj)["Degraded"]["reason"] == "InvalidSpec"
    assert 'secret "s3-creds" not found' in obj["status"]["message"]

    # the user creates the Secret: the kubelet starts the container, the stage runs on
    _pod(cluster, train, {"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    cluster.patch("batch/v1", "Job", train["metadata"]["name"], {"metadata": {"labels": {"poke": "2"}}}, NS)
    obj = wait_phase(cluster, "Training")
    assert conditions(obj)["Degraded"]["status"] == "False"
    assert "s3-creds" not in (md(cluster)["status"].get("message") or "")
    assert "/secrets/" not in clusterwide_operator.log()  # never asked for a Secret


def _serving_pod(cluster: Kube, dep: dict[str, Any], state: dict[str, Any], ready: bool = False) -> None:
    """A pod of the serving Deployment's template, as the ReplicaSet controller and kubelet make it."""
    template = dep["spec"]["template"]
    name = f"{dep['metadata']['name']}-x1"
    if cluster.get("v1", "Pod", name, NS) is None:
        meta = {"name": name, "labels": dict(template["metadata"]["labels"])}
        cluster.create({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}, NS)
    container = template["spec"]["containers"][0]["name"]
    cluster.set_status("v1", "Pod", name, {"phase": "Pending", "containerStatuses": [
        {"name": container, "ready": ready, "restartCount": 0, "image": "x", "imageID": "", "state": state}
    ]}, NS)  # fmt: skip


def test_a_serving_pod_without_its_secret_fails_the_object_until_it_can_start(
    cluster: Kube, clusterwide_operator: OperatorProcess
) -> None:
    doc = digits(storage={"uri": "s3://bucket/x/", "secretRef": {"name": "s3-creds"}})
    doc["spec"]["serving"]["autoscaling"] = {"enabled": False}  # no autoscaler tick reconciles meanwhile
    cluster.apply(doc)
    (train,) = wait_jobs(cluster, "train")
    cluster.complete_job(NS, train["metadata"]["name"], termination_message=TRAIN_OK)
    (conv,) = wait_jobs(cluster, "convert")
    cluster.complete_job(NS, conv["metadata"]["name"], termination_message=CONVERT_OK)
    dep = cluster.wait_for(
        lambda: cluster.get("apps/v1", "Deployment", "digits-predictor", NS), message="Deployment"
    )
    env_from = dep["spec"]["template"]["spec"]["containers"][0].get("envFrom") or []
    assert {"secretRef": {"name": "s3-creds"}} in env_from
    wait_phase(cluster, "Deploying")
    time.sleep(2)  # let the reconciles already queued (the children's own events) run out first

    # the Secret was deleted since the Jobs ran: the kubelet cannot start the serving container. No poke:
    # the pod's own watch event is what reports it (a Deployment's status does not change for it)
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "s3-creds" not found'}
    _serving_pod(cluster, dep, {"waiting": waiting})
    obj = wait_phase(cluster, "Failed")
    cond = conditions(obj)
    assert cond["Degraded"]["reason"] == "InvalidSpec"
    assert cond["Available"]["status"] == "False" and cond["Available"]["reason"] == "PodCannotStart"
    message = obj["status"]["message"]
    assert message.startswith("serving Deployment digits-predictor: pod digits-predictor-x1 cannot start")
    assert 'secret "s3-creds" not found' in message

    # the user creates the Secret: the container starts, the rollout completes
    _serving_pod(cluster, dep, {"running": {"startedAt": "2026-01-01T00:00:00Z"}}, ready=True)
    cluster.make_deployment_ready(NS, "digits-predictor")
    obj = wait_phase(cluster, "Ready")
    assert conditions(obj)["Degraded"]["status"] == "False"
    assert conditions(obj)["Available"]["status"] == "True"
    assert "s3-creds" not in (md(cluster)["status"].get("message") or "")
