"""The test-side controller helpers: Job completion/failure, Deployment rollout, progress deadline."""

from __future__ import annotations

import json
from typing import Any

from kube_emulator.helpers import Kube
from kubernetes import client


def _job(kube: Kube, name: str, **spec: Any) -> None:
    kube.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                **spec,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "train", "image": "trainer:1"}],
                    }
                },
            },
        }
    )


def _deployment(kube: Kube, name: str, replicas: int = 2) -> None:
    kube.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {
                                "name": "server",
                                "image": "server:1",
                                "ports": [{"name": "http", "containerPort": 8080}],
                            }
                        ]
                    },
                },
            },
        }
    )


def test_complete_job_success(kube: Kube, api: Any) -> None:
    _job(kube, "train")
    message = {"ok": True, "stage": "train", "accuracy": 0.97}
    job = kube.complete_job("default", "train", termination_message=message, log="done\n")
    conditions = {c["type"]: c for c in job["status"]["conditions"]}
    assert conditions["Complete"]["status"] == "True" and job["status"]["succeeded"] == 1
    assert job["status"]["completionTime"] and job["status"]["startTime"]
    pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="job-name=train").items
    assert len(pods) == 1 and pods[0].status.phase == "Succeeded"
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert json.loads(terminated.message) == message and terminated.exit_code == 0
    assert pods[0].metadata.owner_references[0].uid == job["metadata"]["uid"]
    log = client.CoreV1Api(api).read_namespaced_pod_log(pods[0].metadata.name, "default")
    assert log == "done\n"


def test_complete_job_failure(kube: Kube) -> None:
    _job(kube, "bad")
    job = kube.complete_job("default", "bad", succeeded=False, termination_message="boom", log="Traceback\n")
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "BackoffLimitExceeded"
    pod = kube.pods("default", "job-name=bad")[0]
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1


def test_indexed_job_gets_one_pod_per_index(kube: Kube) -> None:
    _job(kube, "multi", completionMode="Indexed", completions=3, parallelism=3)
    running = kube.start_job("default", "multi")
    assert running["status"]["active"] == 3
    job = kube.complete_job("default", "multi", termination_message=["a", "b", "c"])
    assert job["status"]["succeeded"] == 3
    pods = kube.pods("default", "job-name=multi")
    by_index = {
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p["status"][
            "containerStatuses"
        ][0]["state"]["terminated"]["message"]
        for p in pods
    }
    assert by_index == {"0": "a", "1": "b", "2": "c"}


def test_make_deployment_ready_with_pod_ips_and_ports(kube: Kube) -> None:
    _deployment(kube, "srv", replicas=2)
    dep = kube.make_deployment_ready("default", "srv", container_port=[18081, 18082])
    st = dep["status"]
    assert st["observedGeneration"] == dep["metadata"]["generation"]
    assert (st["replicas"], st["readyReplicas"], st["updatedReplicas"], st["availableReplicas"]) == (
        2,
        2,
        2,
        2,
    )
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    pods = kube.pods("default", {"app": "srv"})
    assert sorted(p["spec"]["containers"][0]["ports"][0]["containerPort"] for p in pods) == [18081, 18082]
    assert {p["status"]["podIP"] for p in pods} == {"127.0.0.1"}
    assert all(c["status"] == "True" for p in pods for c in p["status"]["conditions"] if c["type"] == "Ready")
    rs = kube.list("apps/v1", "ReplicaSet", "default")
    assert len(rs) == 1 and rs[0]["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]


def test_rollout_of_a_new_template_replaces_pods(kube: Kube) -> None:
    _deployment(kube, "srv", replicas=2)
    kube.make_deployment_ready("default", "srv")
    old = {p["metadata"]["name"] for p in kube.pods("default", {"app": "srv"})}
    kube.patch(
        "apps/v1",
        "Deployment",
        "srv",
        {"spec": {"template": {"metadata": {"annotations": {"r": "2"}}}}},
        "default",
    )
    dep = kube.make_deployment_ready("default", "srv", ready=1)
    new = {p["metadata"]["name"] for p in kube.pods("default", {"app": "srv"})}
    assert len(new) == 2 and not (old & new)
    assert dep["status"]["readyReplicas"] == 1 and dep["status"]["unavailableReplicas"] == 1
    assert dep["status"]["observedGeneration"] == 2
    assert {c["type"]: c["reason"] for c in dep["status"]["conditions"]}["Progressing"] == "ReplicaSetUpdated"
    assert sorted((r["spec"]["replicas"]) for r in kube.list("apps/v1", "ReplicaSet", "default")) == [0, 2]


def test_fail_deployment_progress(kube: Kube) -> None:
    _deployment(kube, "srv")
    dep = kube.fail_deployment_progress("default", "srv")
    progressing = next(c for c in dep["status"]["conditions"] if c["type"] == "Progressing")
    assert progressing["status"] == "False" and progressing["reason"] == "ProgressDeadlineExceeded"


def test_keda_crd_can_be_installed(kube: Kube) -> None:
    kube.install_keda_crd()
    made = kube.create(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "so"},
            "spec": {
                "scaleTargetRef": {"name": "srv"},
                "minReplicaCount": 1,
                "maxReplicaCount": 4,
                "triggers": [{"type": "prometheus", "metadata": {"threshold": "8"}}],
            },
        }
    )
    assert made["spec"]["triggers"][0]["metadata"] == {"threshold": "8"}
