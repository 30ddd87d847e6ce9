"""The operator (`trtforge operator`, a real subprocess running kopf) against the Kubernetes emulator,
with the test acting as job controller, kubelet and deployment controller."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from kube_emulator.helpers import Kube
from trtforge_operator import labels

NS = "ml"
MD = ("trtforge.dev/v1alpha1", "ModelDeployment")
TRAIN_OK = {"ok": True, "stage": "train", "accuracy": 0.9722, "digest": "sha256:abc123"}
CONVERT_OK = {
    "ok": True,
    "stage": "convert",
    "precision": "fp16",
    "top1Drop": 0.0028,
    "sizeBytes": 81234,
    "buildSeconds": 3.2,
    "libraryVersion": "1.7.1.116",
}


def digits(repo: Any = None, **spec_changes: Any) -> dict[str, Any]:
    from pathlib import Path

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "digits.yaml").read_text())
    doc["metadata"]["namespace"] = NS
    for dotted, value in spec_changes.items():
        node = doc["spec"]
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return doc


def md(kube: Kube, name: str = "digits") -> dict[str, Any]:
    obj = kube.get(*MD, name, NS)
    assert obj is not None
    return obj


def jobs(kube: Kube, stage: str, name: str = "digits") -> list[dict[str, Any]]:
    sel = f"{labels.MODELDEPLOYMENT}={name},{labels.STAGE}={stage}"
    return sorted(kube.list("batch/v1", "Job", NS, sel), key=lambda j: j["metadata"]["creationTimestamp"])


def wait_jobs(
    kube: Kube, stage: str, count: int = 1, name: str = "digits", exclude: set[str] | None = None
) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]]:
        js = [j for j in jobs(kube, stage, name) if j["metadata"]["name"] not in (exclude or set())]
        return js if len(js) >= count else []

    return kube.wait_for(found, timeout=15, message=f"{count} {stage} Job(s) of {name}")  # type: ignore[no-any-return]


def wait_phase(kube: Kube, phase: str, name: str = "digits", timeout: float = 15) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = md(kube, name)
        return obj if (obj.get("status") or {}).get("phase") == phase else None

    try:
        return kube.wait_for(check, timeout=timeout, message=f"phase {phase}")  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(f"phase {phase} not reached; status: {md(kube, name).get('status')}") from None


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj["status"].get("conditions") or []}


def drive_to_ready(kube: Kube, name: str = "digits") -> dict[str, Any]:
    (train,) = wait_jobs(kube, "train", name=name)
    kube.complete_job(NS, train["metadata"]["name"], termination_message=TRAIN_OK)
    (conv,) = wait_jobs(kube, "convert", name=name)
    kube.complete_job(NS, conv["metadata"]["name"], termination_message=CONVERT_OK)
    dep = kube.wait_for(
        lambda: kube.get("apps/v1", "Deployment", f"{name}-predictor", NS), message="Deployment"
    )
    kube.make_deployment_ready(NS, dep["metadata"]["name"])
    return wait_phase(kube, "Ready", name)


def children(kube: Kube, name: str = "digits") -> dict[str, list[str]]:
    sel = f"{labels.MODELDEPLOYMENT}={name}"
    out = {}
    for api, kind in (("batch/v1", "Job"), ("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ConfigMap")):
        out[kind] = sorted(o["metadata"]["name"] for o in kube.list(api, kind, NS, sel))
    return out


# ---------------------------------------------------------------------------------------------- tests


def test_digits_from_kubectl_apply_to_ready(cluster: Kube, operator: Any, tmp_path: Any) -> None:
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(digits()))
    cluster.kubectl("apply", "--validate=false", "-f", str(path))
    (train,) = wait_jobs(cluster, "train")
    obj = wait_phase(cluster, "Training")
    assert obj["metadata"]["uid"] in str(train["metadata"]["ownerReferences"])
    assert conditions(obj)["Trained"]["status"] == "Unknown"
    cm = cluster.get("v1", "ConfigMap", train["metadata"]["name"], NS)
    assert cm is not None and "builtin://digits" in cm["data"]["modeldeployment.yaml"]

    cluster.complete_job(NS, train["metadata"]["name"], termination_message=TRAIN_OK)
    (conv,) = wait_jobs(cluster, "convert")
    obj = wait_phase(cluster, "Converting")
    assert obj["status"]["model"]["accuracy"] == pytest.approx(0.9722)
    assert obj["status"]["model"]["digest"] == "sha256:abc123"
    assert conditions(obj)["Trained"]["status"] == "True"

    cluster.complete_job(NS, conv["metadata"]["name"], termination_message=CONVERT_OK)
    dep = cluster.wait_for(
        lambda: cluster.get("apps/v1", "Deployment", "digits-predictor", NS), message="Deployment"
    )
    wait_phase(cluster, "Deploying")
    assert dep["spec"]["replicas"] == 1  # autoscaling enabled: minReplicas
    assert cluster.get("v1", "Service", "digits", NS) is not None
    cluster.make_deployment_ready(NS, "digits-predictor")
    obj = wait_phase(cluster, "Ready")
    st = obj["status"]
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    assert st["engine"]["precision"] == "fp16" and st["engine"]["top1Drop"] == pytest.approx(0.0028)
    assert st["engine"]["backend"] == "tensorrt-rtx" and st["engine"]["computeCapabilities"] == ["8.6", "8.9"]
    assert st["engine"]["sizeBytes"] == 81234 and st["engine"]["version"] == "1.7.1.116"
    assert st["serving"]["url"] == "http://digits.ml.svc:8080"
    assert st["serving"]["readyReplicas"] == 1 and st["serving"]["replicas"] == 1
    assert (
        st["serving"]["selector"]
        == "app.kubernetes.io/component=predictor,trtforge.dev/modeldeployment=digits"
    )
    assert st["serving"]["lastGoodRevision"] == st["serving"]["revision"]
    assert st["serving"]["history"][-1]["outcome"] == "Ready"
    conds = conditions(obj)
    assert {k: v["status"] for k, v in conds.items()} == {
        "Trained": "True",
        "EngineBuilt": "True",
        "Available": "True",
        "Progressing": "False",
        "Degraded": "False",
    }
    wanted = {"TrainingStarted", "Trained", "ConversionStarted", "EngineBuilt", "Available"}
    cluster.wait_for(lambda: wanted <= {e["reason"] for e in cluster.events(NS, "digits")}, message="events")

    # kubectl get md shows the printer columns
    out = cluster.kubectl("get", "md", "-n", NS).stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "REASON", "ACCURACY", "ENGINE", "READY", "URL", "AGE"]
    assert row.split()[:6] == ["digits", "Ready", "0.9722", "fp16", "1", "http://digits.ml.svc:8080"]

    # idle: a settled ModelDeployment is not rewritten
    rv = md(cluster)["metadata"]["resourceVersion"]
    time.sleep(1.0)
    assert md(cluster)["metadata"]["resourceVersion"] == rv


def test_spec_changes_at_each_level(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    ready = drive_to_ready(cluster)
    first = children(cluster)
    train_name = first["Job"][0] if "train" in first["Job"][0] else first["Job"][1]
    serving_rev = ready["status"]["serving"]["revision"]

    # serving-only change: no retraining, no reconversion; the Deployment rolls to a new revision
    cluster.patch(*MD, "digits", {"spec": {"serving": {"resources": {"cpu": "2"}}}}, NS)
    cluster.wait_for(
        lambda: (
            (d := cluster.get("apps/v1", "Deployment", "digits-predictor", NS))
            and d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2"
        ),
        message="Deployment patched",
    )
    assert len(jobs(cluster, "train")) == 1 and len(jobs(cluster, "convert")) == 1
    wait_phase(cluster, "Deploying")
    cluster.make_deployment_ready(NS, "digits-predictor")
    obj = wait_phase(cluster, "Ready")
    assert obj["status"]["serving"]["revision"] != serving_rev
    assert [h["outcome"] for h in obj["status"]["serving"]["history"]] == ["Superseded", "Ready"]

    # engine change: reconvert only
    old_convs = {j["metadata"]["name"] for j in jobs(cluster, "convert")}
    cluster.patch(*MD, "digits", {"spec": {"engine": {"precision": "fp32"}}}, NS)
    (conv,) = wait_jobs(cluster, "convert", exclude=old_convs)
    assert len(jobs(cluster, "train")) == 1
    cluster.complete_job(
        NS, conv["metadata"]["name"], termination_message={**CONVERT_OK, "precision": "fp32"}
    )
    cluster.wait_for(
        lambda: md(cluster)["status"]["engine"].get("precision") == "fp32", message="engine fp32"
    )
    wait_phase(cluster, "Deploying")
    cluster.make_deployment_ready(NS, "digits-predictor")
    wait_phase(cluster, "Ready")

    # training change: retrain, reconvert, redeploy
    cluster.patch(*MD, "digits", {"spec": {"model": {"train": {"epochs": 31}}}}, NS)
    (new,) = wait_jobs(cluster, "train", exclude={train_name})
    obj = wait_phase(cluster, "Training")
    assert obj["status"]["serving"]["readyReplicas"] == 1  # the old revision keeps serving
    assert "accuracy" not in obj["status"]["model"]
    new_train = new["metadata"]["name"]
    assert new_train != train_name
    old_convs = {j["metadata"]["name"] for j in jobs(cluster, "convert")}
    cluster.complete_job(NS, new_train, termination_message={**TRAIN_OK, "accuracy": 0.98})
    (conv,) = wait_jobs(cluster, "convert", exclude=old_convs)
    cluster.complete_job(NS, conv["metadata"]["name"], termination_message=CONVERT_OK)
    cluster.wait_for(lambda: md(cluster)["status"]["phase"] == "Deploying", message="Deploying")
    cluster.make_deployment_ready(NS, "digits-predictor")
    obj = wait_phase(cluster, "Ready")
    assert obj["status"]["model"]["accuracy"] == pytest.approx(0.98)


def test_training_failure_reports_reason_and_log_then_a_fix_retrains(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    (train,) = wait_jobs(cluster, "train")
    cluster.complete_job(
        NS,
        train["metadata"]["name"],
        succeeded=False,
        exit_code=4,
        reason="PodFailurePolicy",
        termination_message={
            "ok": False,
            "stage": "train",
            "error": "test accuracy 0.41 is below minAccuracy 0.95",
        },
        log="epoch 29/30\nepoch 30/30\nquality gate failed: accuracy 0.41 < 0.95",
    )
    obj = wait_phase(cluster, "Failed")
    cond = conditions(obj)["Trained"]
    assert cond["status"] == "False" and cond["reason"] == "QualityGateFailed"
    assert "below minAccuracy" in cond["message"] and "quality gate failed: accuracy 0.41" in cond["message"]
    assert conditions(obj)["Degraded"]["status"] == "True"
    cluster.wait_for(
        lambda: "TrainingFailed" in {e["reason"] for e in cluster.events(NS, "digits")}, message="event"
    )
    # no retry of the failed revision, no hot loop
    rv = obj["metadata"]["resourceVersion"]
    time.sleep(1.0)
    assert md(cluster)["metadata"]["resourceVersion"] == rv and len(jobs(cluster, "train")) == 1
    # fixing the spec starts a new revision
    cluster.patch(*MD, "digits", {"spec": {"model": {"train": {"minAccuracy": 0.3}}}}, NS)
    wait_jobs(cluster, "train", count=2)
    wait_phase(cluster, "Training")


def test_conversion_failure(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    (train,) = wait_jobs(cluster, "train")
    cluster.complete_job(NS, train["metadata"]["name"], termination_message=TRAIN_OK)
    (conv,) = wait_jobs(cluster, "convert")
    cluster.complete_job(
        NS, conv["metadata"]["name"], succeeded=False, exit_code=1, log="Traceback...\nRuntimeError: boom"
    )
    obj = wait_phase(cluster, "Failed")
    cond = conditions(obj)["EngineBuilt"]
    assert cond["reason"] == "BackoffLimitExceeded" and "RuntimeError: boom" in cond["message"]


def test_rollout_that_misses_its_deadline_is_rolled_back(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    good = drive_to_ready(cluster)["status"]["serving"]["revision"]
    cluster.patch(*MD, "digits", {"spec": {"serving": {"batching": {"maxBatchSize": 8}}}}, NS)

    def bad_revision() -> str | None:
        dep = cluster.get("apps/v1", "Deployment", "digits-predictor", NS)
        rev = dep["spec"]["template"]["metadata"]["labels"][labels.REVISION]
        return rev if rev != good else None

    bad = cluster.wait_for(bad_revision, message="new revision rolled")
    cluster.fail_deployment_progress(NS, "digits-predictor")
    cluster.wait_for(lambda: bad_revision() is None, message="template back to the good revision")
    cluster.make_deployment_ready(NS, "digits-predictor")
    obj = wait_phase(cluster, "Ready")
    st = obj["status"]["serving"]
    assert st["revision"] == good and st["lastGoodRevision"] == good
    assert {h["revision"]: h["outcome"] for h in st["history"]} == {good: "Ready", bad: "RolledBack"}
    deg = conditions(obj)["Degraded"]
    assert deg["status"] == "True" and deg["reason"] == "RolledBack"
    cluster.wait_for(
        lambda: "RolledBack" in {e["reason"] for e in cluster.events(NS, "digits")}, message="event"
    )
    # a later serving change tries again
    cluster.patch(*MD, "digits", {"spec": {"serving": {"batching": {"maxBatchSize": 16}}}}, NS)
    cluster.wait_for(lambda: bad_revision() not in (None, bad), message="newer revision rolled")
    cluster.make_deployment_ready(NS, "digits-predictor")
    cluster.wait_for(lambda: conditions(md(cluster))["Degraded"]["status"] == "False", message="not degraded")


@pytest.mark.parametrize("phase", ["Training", "Converting", "Deploying", "Ready"])
def test_operator_restart_in_every_phase_creates_no_duplicates(
    cluster: Kube, operator: Any, phase: str
) -> None:
    cluster.apply(digits())
    steps = ["Training", "Converting", "Deploying", "Ready"]
    (train,) = wait_jobs(cluster, "train")
    if steps.index(phase) >= 1:
        cluster.complete_job(NS, train["metadata"]["name"], termination_message=TRAIN_OK)
        (conv,) = wait_jobs(cluster, "convert")
    if steps.index(phase) >= 2:
        cluster.complete_job(NS, conv["metadata"]["name"], termination_message=CONVERT_OK)
        cluster.wait_for(
            lambda: cluster.get("apps/v1", "Deployment", "digits-predictor", NS), message="Deployment"
        )
    if steps.index(phase) >= 3:
        cluster.make_deployment_ready(NS, "digits-predictor")
    wait_phase(cluster, phase)
    before = children(cluster)
    operator.kill()
    operator.start()
    time.sleep(1.0)
    assert children(cluster) == before
    # and the pipeline continues from where it was
    if phase != "Ready":
        if phase == "Training":
            cluster.complete_job(NS, train["metadata"]["name"], termination_message=TRAIN_OK)
            (conv,) = wait_jobs(cluster, "convert")
        if phase in ("Training", "Converting"):
            cluster.complete_job(NS, conv["metadata"]["name"], termination_message=CONVERT_OK)
            cluster.wait_for(
                lambda: cluster.get("apps/v1", "Deployment", "digits-predictor", NS), message="Deployment"
            )
        cluster.make_deployment_ready(NS, "digits-predictor")
    wait_phase(cluster, "Ready")
    after = children(cluster)
    assert len(after["Job"]) == 2 and after["Deployment"] == ["digits-predictor"]


def test_deletion_garbage_collects_children(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    drive_to_ready(cluster)
    assert all(children(cluster).values())
    cluster.kubectl("delete", "md", "digits", "-n", NS)
    cluster.wait_for(lambda: not any(children(cluster).values()), message="children garbage-collected")


def test_schema_violating_resource_is_refused_by_the_api(cluster: Kube, tmp_path: Any) -> None:
    bad = digits(**{"model.train.epochs": 0})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = cluster.kubectl("apply", "--validate=false", "-f", str(path), check=False)
    assert proc.returncode != 0 and "epochs" in proc.stderr


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"engine.computeCapabilities": ["9.0"]}, "spec.engine.computeCapabilities[0]"),
        ({"model.train.dataset.uri": "/home/me/data.npz"}, "spec.model.train.dataset.uri"),
        (
            {"storage": {"uri": "s3://bucket/x", "secretRef": {"name": "missing"}}},
            "spec.storage.secretRef.name",
        ),
    ],
)
def test_unworkable_resource_fails_naming_the_field(
    cluster: Kube, operator: Any, changes: dict[str, Any], field: str
) -> None:
    cluster.apply(digits(**changes))
    obj = wait_phase(cluster, "Failed")
    assert obj["status"]["message"].startswith(field)
    assert conditions(obj)["Degraded"]["reason"] == "InvalidSpec"
    assert not jobs(cluster, "train")
    rv = obj["metadata"]["resourceVersion"]
    time.sleep(1.0)
    assert md(cluster)["metadata"]["resourceVersion"] == rv  # no hot loop
    assert "Traceback" not in operator.log()


def test_scale_subresource_with_autoscaling_disabled(cluster: Kube, operator: Any) -> None:
    doc = digits()
    doc["spec"]["serving"]["autoscaling"] = {"enabled": False}
    cluster.apply(doc)
    drive_to_ready(cluster)
    cluster.kubectl("scale", "md", "digits", "-n", NS, "--replicas=3")
    dep = cluster.wait_for(
        lambda: (
            (d := cluster.get("apps/v1", "Deployment", "digits-predictor", NS))
            and d["spec"]["replicas"] == 3
            and d
        ),
        message="Deployment scaled to 3",
    )
    assert dep is not None
    cluster.wait_for(
        lambda: cluster.get("policy/v1", "PodDisruptionBudget", "digits-predictor", NS),
        message="PDB for 3 replicas",
    )
    cluster.make_deployment_ready(NS, "digits-predictor")
    cluster.wait_for(lambda: md(cluster)["status"]["serving"]["readyReplicas"] == 3, message="3 ready")


def test_autoscaled_replicas_are_left_to_the_autoscaler(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    drive_to_ready(cluster)
    cluster.patch("apps/v1", "Deployment", "digits-predictor", {"spec": {"replicas": 3}}, NS)
    cluster.patch(*MD, "digits", {"spec": {"serving": {"resources": {"cpu": "2"}}}}, NS)
    dep = cluster.wait_for(
        lambda: (
            (d := cluster.get("apps/v1", "Deployment", "digits-predictor", NS))
            and d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2"
            and d
        ),
        message="template patched",
    )
    assert dep["spec"]["replicas"] == 3


def test_multi_worker_and_tensorrt_children(cluster: Kube, operator: Any) -> None:
    doc = digits()
    doc["spec"]["model"]["train"]["workers"] = 2
    doc["spec"]["engine"].update(backend="tensorrt", computeCapabilities=["8.9", "9.0"])
    doc["spec"]["engine"]["resources"]["gpus"] = 1
    cluster.apply(doc)
    (train,) = wait_jobs(cluster, "train")
    assert train["spec"]["completionMode"] == "Indexed"
    assert cluster.get("v1", "Service", train["metadata"]["name"], NS)["spec"]["clusterIP"] == "None"
    cluster.complete_job(NS, train["metadata"]["name"], termination_message=[TRAIN_OK, {"ok": True}])
    convs = wait_jobs(cluster, "convert", count=2)
    assert sorted(
        j["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.compute.minor"] for j in convs
    ) == ["0", "9"]
    cluster.complete_job(
        NS, convs[0]["metadata"]["name"], termination_message={**CONVERT_OK, "computeCapability": "8.9"}
    )
    time.sleep(0.5)
    assert md(cluster)["status"]["phase"] == "Converting"
    cluster.complete_job(
        NS, convs[1]["metadata"]["name"], termination_message={**CONVERT_OK, "computeCapability": "9.0"}
    )
    obj = wait_phase(cluster, "Deploying")
    assert obj["status"]["engine"]["computeCapabilities"] == ["8.9", "9.0"]
    assert obj["status"]["engine"]["sizeBytes"] == 2 * 81234
    assert obj["status"]["model"]["accuracy"] == pytest.approx(TRAIN_OK["accuracy"])


def test_deletion_with_retain_on_delete_false_runs_the_cleanup_job(cluster: Kube, operator: Any) -> None:
    doc = digits()
    doc["spec"]["storage"] = {"retainOnDelete": False}
    cluster.apply(doc)
    wait_jobs(cluster, "train")
    cluster.wait_for(lambda: md(cluster)["metadata"].get("finalizers"), message="kopf's finalizer")
    cluster.delete(*MD, "digits", NS)
    job = cluster.wait_for(lambda: jobs(cluster, "cleanup"), message="cleanup Job")[0]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "/artifacts/ml/digits"
    cluster.wait_for(lambda: cluster.get(*MD, "digits", NS) is None, message="ModelDeployment gone")
    cluster.wait_for(lambda: not jobs(cluster, "train"), message="training Job garbage-collected")
    assert jobs(cluster, "cleanup")  # not owned: it outlives the ModelDeployment


def test_finished_jobs_removed_by_their_ttl_are_not_recreated(cluster: Kube, operator: Any) -> None:
    cluster.apply(digits())
    drive_to_ready(cluster)
    for job in jobs(cluster, "train") + jobs(cluster, "convert"):
        cluster.delete("batch/v1", "Job", job["metadata"]["name"], NS)  # what ttlSecondsAfterFinished does
    cluster.patch(*MD, "digits", {"spec": {"serving": {"replicas": 2}}}, NS)  # a reconcile happens
    time.sleep(1.0)
    assert not jobs(cluster, "train") and not jobs(cluster, "convert")
    assert md(cluster)["status"]["phase"] == "Ready"


def test_first_revision_missing_its_deadline_fails_until_it_becomes_ready(
    cluster: Kube, operator: Any
) -> None:
    cluster.apply(digits())
    (train,) = wait_jobs(cluster, "train")
    cluster.complete_job(NS, train["metadata"]["name"], termination_message=TRAIN_OK)
    (conv,) = wait_jobs(cluster, "convert")
    cluster.complete_job(NS, conv["metadata"]["name"], termination_message=CONVERT_OK)
    wait_phase(cluster, "Deploying")
    cluster.fail_deployment_progress(NS, "digits-predictor")
    obj = wait_phase(cluster, "Failed")
    assert conditions(obj)["Degraded"]["reason"] == "ProgressDeadlineExceeded"
    assert "no earlier good revision" in obj["status"]["message"]
    cluster.make_deployment_ready(NS, "digits-predictor")  # e.g. the image finally pulled
    obj = wait_phase(cluster, "Ready")
    assert obj["status"]["serving"]["history"][-1]["outcome"] == "Ready"
