"""The control loop's housekeeping, with the operator as a real process against the test API server:
superseded Jobs, stage ConfigMaps, finalizers, explicit retry, drift of every owned kind, ignored
`kubectl scale md`, one Event per failure, one log line per record."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kube_emulator.helpers import Kube
from test_integration import (
    MD,
    NS,
    TRAIN_OK,
    conditions,
    digits,
    drive_to_ready,
    jobs,
    md,
    wait_jobs,
    wait_phase,
)
from trtforge_operator import labels, naming
from trtforge_operator.reconcilers import deployment

QUALITY_GATE = {"ok": False, "stage": "train", "error": "test accuracy 0.41 is below minAccuracy 0.95"}


def reasons(cluster: Kube, type_: str | None = None) -> list[str]:
    return [e["reason"] for e in cluster.events(NS, "digits") if type_ is None or e["type"] == type_]


def config_maps(cluster: Kube, stage: str) -> list[str]:
    sel = f"{labels.MODELDEPLOYMENT}=digits,{labels.STAGE}={stage}"
    return sorted(c["metadata"]["name"] for c in cluster.list("v1", "ConfigMap", NS, sel))


def fail_training(cluster: Kube, name: str) -> None:
    cluster.complete_job(
        NS,
        name,
        succeeded=False,
        exit_code=4,
        reason="PodFailurePolicy",
        termination_message=QUALITY_GATE,
        log="quality gate failed: accuracy 0.41 < 0.95",
    )


def test_edits_during_training_leave_one_training_job_and_three_config_maps(
    cluster: Kube, operator: Any
) -> None:
    cluster.apply(digits())
    seen = {wait_jobs(cluster, "train")[0]["metadata"]["name"]}
    for epochs in (31, 32, 33):  # three edits while the previous revision trains
        cluster.patch(*MD, "digits", {"spec": {"model": {"train": {"epochs": epochs}}}}, NS)
        (new,) = wait_jobs(cluster, "train", exclude=seen)
        seen.add(new["metadata"]["name"])
    cluster.wait_for(lambda: len(jobs(cluster, "train")) == 1, message="superseded Jobs deleted")
    (left,) = jobs(cluster, "train")
    assert left["metadata"]["name"] == new["metadata"]["name"]
    assert reasons(cluster).count("SupersededJobDeleted") == 3
    # the newest three revisions' ConfigMaps are kept, the first one's is gone
    cluster.wait_for(lambda: len(config_maps(cluster, "train")) == 3, message="ConfigMaps pruned")
    assert left["metadata"]["name"] in config_maps(cluster, "train")
    time.sleep(0.5)
    assert len(jobs(cluster, "train")) == 1  # and nothing recreates the old ones
    # the remaining revision goes on as usual
    cluster.complete_job(NS, left["metadata"]["name"], termination_message=TRAIN_OK)
    wait_jobs(cluster, "convert")


def test_a_plain_modeldeployment_has_no_finalizer_and_goes_without_the_operator(
    cluster: Kube, operator: Any
) -> None:
    doc = digits()
    doc["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]  # left by older versions
    cluster.apply(doc)
    wait_jobs(cluster, "train")
    cluster.wait_for(lambda: not md(cluster)["metadata"].get("finalizers"), message="legacy finalizer gone")
    wait_phase(cluster, "Training")
    operator.stop()
    cluster.kubectl("delete", "md", "digits", "-n", NS, "--timeout=10s")
    assert cluster.get(*MD, "digits", NS) is None
    cluster.kubectl("delete", "namespace", NS, "--timeout=10s")
    cluster.wait_for(lambda: cluster.get("v1", "Namespace", NS) is None, timeout=5, message="namespace gone")


def test_retry_annotation_reruns_the_failed_stage_only(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    (train,) = wait_jobs(cluster, "train")
    name = train["metadata"]["name"]
    fail_training(cluster, name)
    wait_phase(cluster, "Failed")
    failed_uid = jobs(cluster, "train")[0]["metadata"]["uid"]
    cluster.kubectl("annotate", "md", "digits", "-n", NS, "trtforge.dev/retry=1", "--overwrite")
    obj = wait_phase(cluster, "Training")
    assert conditions(obj)["Trained"]["status"] == "Unknown"
    (again,) = cluster.wait_for(
        lambda: [j for j in jobs(cluster, "train") if j["metadata"]["uid"] != failed_uid],
        message="the training Job recreated",
    )
    assert again["metadata"]["name"] == name  # the same revision, not a new one
    assert "RetryStarted" in reasons(cluster)
    cluster.wait_for(
        lambda: md(cluster)["metadata"]["annotations"].get("trtforge.dev/retry-handled") == "1",
        message="the token recorded",
    )
    # it fails again: the same token does not rerun it, a new one does
    fail_training(cluster, name)
    wait_phase(cluster, "Failed")
    rv = md(cluster)["metadata"]["resourceVersion"]
    time.sleep(1.0)
    assert md(cluster)["metadata"]["resourceVersion"] == rv and len(jobs(cluster, "train")) == 1
    cluster.kubectl("annotate", "md", "digits", "-n", NS, "trtforge.dev/retry=2", "--overwrite")
    wait_phase(cluster, "Training")
    (third,) = cluster.wait_for(
        lambda: [j for j in jobs(cluster, "train") if not (j.get("status") or {}).get("conditions")],
        message="a running training Job",
    )
    cluster.complete_job(NS, third["metadata"]["name"], termination_message=TRAIN_OK)
    wait_phase(cluster, "Converting")


def test_a_training_failure_posts_one_warning_event(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    (train,) = wait_jobs(cluster, "train")
    fail_training(cluster, train["metadata"]["name"])
    wait_phase(cluster, "Failed")
    cluster.wait_for(lambda: "TrainingFailed" in reasons(cluster), message="the Warning Event")
    time.sleep(0.5)
    assert reasons(cluster, "Warning") == ["TrainingFailed"]


@pytest.mark.parametrize(
    ("api_version", "kind", "name"),
    [
        ("v1", "Service", "digits"),
        ("v1", "ConfigMap", None),
        ("policy/v1", "PodDisruptionBudget", "digits-predictor"),
    ],
)
def test_a_deleted_child_is_recreated_within_two_seconds(
    cluster: Kube,
    operator: Any,
    api_version: str,
    kind: str,
    name: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10 item 7's promise: drift is repaired within 2 s (by the child's watch event; the resync is
    120 s away). The gap is taken from the API server's own record of the DELETED and ADDED events, so
    the test's polling does not count; the wait only guards against a hang."""
    doc = digits()
    doc["spec"]["serving"]["autoscaling"] = {"enabled": False}
    doc["spec"]["serving"]["replicas"] = 2  # a PodDisruptionBudget is made for more than one replica
    cluster.apply(doc)
    ready = drive_to_ready(cluster)
    if name is None:  # the serving revision's ConfigMap
        name = naming.config_map_name("digits", deployment.STAGE, ready["status"]["serving"]["revision"])
    assert cluster.get(api_version, kind, name, NS) is not None
    events = _recorded_events(cluster, monkeypatch)
    cluster.delete(api_version, kind, name, NS)
    cluster.wait_for(lambda: cluster.get(api_version, kind, name, NS), timeout=60, message=f"{kind} back")
    times = {type_: at for at, type_, k, n in events if (k, n) == (kind, name)}
    assert times["ADDED"] - times["DELETED"] < REPAIR_PROMISE_SECONDS


REPAIR_PROMISE_SECONDS = 2.0  # docs/operator.md: a deleted or edited child is repaired within a second or so


def _recorded_events(cluster: Kube, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str, str, str]]:
    """(monotonic time, type, kind, name) of every watch event the API server emits from now on."""
    store = cluster.emulator.store
    emit = store._emit
    events: list[tuple[float, str, str, str]] = []

    def recording(skey: Any, event: Any) -> None:
        meta = event.obj.get("metadata") or {}
        events.append((time.monotonic(), event.type, event.obj.get("kind", ""), meta.get("name", "")))
        emit(skey, event)

    monkeypatch.setattr(store, "_emit", recording)
    return events


def test_kubectl_scale_with_autoscaling_on_says_it_is_ignored(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    drive_to_ready(cluster)
    cluster.kubectl("scale", "md", "digits", "-n", NS, "--replicas=3")
    obj = cluster.wait_for(
        lambda: (o := md(cluster)) and "ignored" in o["status"]["message"] and o, message="status says so"
    )
    message = obj["status"]["message"]
    assert "spec.serving.replicas=3" in message and "autoscaling.enabled=false" in message
    assert obj["status"]["phase"] == "Ready"
    cluster.wait_for(lambda: "ScaleIgnored" in reasons(cluster, "Warning"), message="the Warning Event")
    assert cluster.get("apps/v1", "Deployment", "digits-predictor", NS)["spec"]["replicas"] == 1
    time.sleep(0.5)
    assert reasons(cluster, "Warning").count("ScaleIgnored") == 1
    # back to the default count: the note goes away
    cluster.kubectl("scale", "md", "digits", "-n", NS, "--replicas=1")
    cluster.wait_for(lambda: "ignored" not in md(cluster)["status"]["message"], message="note cleared")


def test_every_log_line_is_printed_once(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    wait_jobs(cluster, "train")
    log = operator.log()
    assert log.count("trtforge operator: namespaces=") == 1
    assert log.count("became the leader") == 1


def test_without_leader_election_the_operator_acts_at_once_and_writes_no_lease(
    cluster: Kube, tmp_path: Any
) -> None:
    from operator_process import OperatorProcess

    op = OperatorProcess(cluster.kubeconfig, tmp_path / "op.log", env={"TRTFORGE_LEADER_ELECTION": "false"})
    op.start()
    try:
        assert op.role() == "leader"
        cluster.apply(digits())
        wait_jobs(cluster, "train")
        assert cluster.list("coordination.k8s.io/v1", "Lease", "default") == []
    finally:
        op.stop()


def test_keda_mode_without_keda_serves_degraded_then_heals(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits(**{"serving.autoscaling.mode": "keda"}))
    obj = drive_to_ready(cluster)  # the Deployment serves meanwhile
    deg = conditions(obj)["Degraded"]
    assert deg["status"] == "True" and deg["reason"] == "AutoscalingUnavailable", deg
    assert "KEDA" in deg["message"]
    cluster.install_keda_crd()
    cluster.patch(*MD, "digits", {"metadata": {"annotations": {"touch": "1"}}}, NS)  # any event
    scaled_object = ("keda.sh/v1alpha1", "ScaledObject", "digits-predictor", NS)
    cluster.wait_for(lambda: cluster.get(*scaled_object), message="ScaledObject")
    cluster.wait_for(lambda: conditions(md(cluster))["Degraded"]["status"] == "False", message="healed")
