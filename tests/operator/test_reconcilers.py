"""Each reconciler's manifest: the right content, and faithful to the Kubernetes API types (it survives a
round trip through the official client's models, so no field is misspelt or misplaced)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from trtforge_operator import labels
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers import configmap, convert_job, deployment, pdb, service, train_job
from trtforge_operator.settings import OperatorSettings
from trtforge_runtime.spec.load import parse_manifest

MakePlan = Callable[..., Plan]
MakeSpec = Callable[..., dict[str, Any]]

TYPES = {
    "Job": "V1Job",
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "ConfigMap": "V1ConfigMap",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
}


def roundtrip(manifest: dict[str, Any]) -> None:
    """Deserialize into the client's model and back: equal only if every field is known and well-typed."""
    from kubernetes.client import ApiClient

    api = ApiClient()

    obj = api._ApiClient__deserialize(json.loads(json.dumps(manifest)), TYPES[manifest["kind"]])
    again = api.sanitize_for_serialization(obj)
    assert again == json.loads(json.dumps(manifest))


def pod_specs(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def assert_restricted(pod: dict[str, Any]) -> None:
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001 and sc["fsGroup"] == 10001
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"]:
        csc = c["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False
        assert csc["readOnlyRootFilesystem"] is True
        assert csc["capabilities"] == {"drop": ["ALL"]}
        assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])


def assert_owned_and_labelled(manifest: dict[str, Any], revision: str) -> None:
    meta = manifest["metadata"]
    assert meta["namespace"] == "ml"
    ref = meta["ownerReferences"][0]
    assert ref["kind"] == "ModelDeployment" and ref["uid"] == "0000-1111" and ref["controller"] is True
    lab = meta["labels"]
    for key in (
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/part-of",
    ):
        assert lab[key]
    assert lab[labels.MODELDEPLOYMENT] == "digits"
    assert lab[labels.REVISION] == revision


def test_config_map_holds_the_full_manifest(make_plan: MakePlan) -> None:
    p = make_plan()
    cm = configmap.config_map(p, "train", p.training)
    roundtrip(cm)
    assert_owned_and_labelled(cm, p.training)
    doc = yaml.safe_load(cm["data"]["modeldeployment.yaml"])
    md = parse_manifest(doc)  # what `trtforge train -f` will read
    assert md.metadata.name == "digits" and md.spec == p.spec
    assert doc["spec"]["engine"]["workspaceMib"] == 2048  # defaults written out


def test_train_job(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    spec = make_spec(
        **{
            "model.train.resources": {"gpus": 2, "cpu": "4", "memory": "16Gi"},
            "placement": {
                "nodeSelector": {"pool": "train"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
                ],
            },
        }
    )
    p = make_plan(spec)
    job = train_job.train_job(p)
    roundtrip(job)
    assert_owned_and_labelled(job, p.training)
    assert job["metadata"]["name"] == f"digits-train-{p.training}"
    js = job["spec"]
    assert js["backoffLimit"] == 2 and js["activeDeadlineSeconds"] == 86400
    assert js["ttlSecondsAfterFinished"] == OperatorSettings().job_ttl_seconds
    assert js["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2, 3, 4, 5, 6, 7, 8, 9]
    pod = pod_specs(job)
    assert_restricted(pod)
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"pool": "train"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["tolerations"][0]["key"] == "dedicated"
    (c,) = pod["containers"]
    assert c["image"] == OperatorSettings().trainer_image
    assert c["command"] == ["trtforge"]
    model_dir = f"/artifacts/ml/digits/models/{p.training}"
    assert c["args"][:5] == ["train", "-f", "/etc/trtforge/modeldeployment.yaml", "-o", model_dir]
    assert c["resources"]["limits"] == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"}
    assert c["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["TRTFORGE_TERMINATION_MESSAGE_PATH"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["artifacts"]["persistentVolumeClaim"]["claimName"] == "trtforge-artifacts"
    assert vols["manifest"]["configMap"]["name"] == f"digits-train-{p.training}"
    assert pod["serviceAccountName"] == "default"
    assert job["spec"]["template"]["metadata"]["labels"][labels.JOB] == job["metadata"]["name"]
    assert train_job.train_service(p) is None


def test_cpu_training_has_no_gpu(make_plan: MakePlan) -> None:
    pod = pod_specs(train_job.train_job(make_plan()))  # the example trains with gpus: 0
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in pod


def test_multi_worker_training_is_an_indexed_job(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    p = make_plan(make_spec(**{"model.train.workers": 3}))
    job = train_job.train_job(p)
    roundtrip(job)
    js = job["spec"]
    assert js["completionMode"] == "Indexed" and js["completions"] == 3 and js["parallelism"] == 3
    pod = pod_specs(job)
    assert pod["subdomain"] == p.train_job
    c = pod["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    cluster = json.loads(env["TRTFORGE_TF_CLUSTER"])
    assert cluster["worker"] == [f"{p.train_job}-{i}.{p.train_job}:12345" for i in range(3)]
    assert c["command"] == ["/bin/sh"] and c["args"][0] == "-c" and "JOB_COMPLETION_INDEX" in c["args"][1]
    svc = train_job.train_service(p)
    assert svc is not None
    roundtrip(svc)
    assert svc["metadata"]["name"] == p.train_job and svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == {labels.JOB: p.train_job}


def test_tf_config_entry_script_builds_valid_json(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    import subprocess

    p = make_plan(make_spec(**{"model.train.workers": 2}))
    c = pod_specs(train_job.train_job(p))["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    script = c["args"][1].replace('exec trtforge "$@"', 'printf %s "$TF_CONFIG"')
    out = subprocess.run(
        ["/bin/sh", "-c", script, *c["args"][2:]],
        env={"TRTFORGE_TF_CLUSTER": env["TRTFORGE_TF_CLUSTER"], "JOB_COMPLETION_INDEX": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tf = json.loads(out)
    assert tf["task"] == {"type": "worker", "index": 1}
    assert len(tf["cluster"]["worker"]) == 2


def test_tensorrt_builds_one_job_per_gpu_architecture(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    spec = make_spec(**{"engine.backend": "tensorrt", "engine.computeCapabilities": ["8.9", "9.0"]})
    spec["engine"]["resources"]["gpus"] = 1
    p = make_plan(spec)
    jobs = convert_job.convert_jobs(p)
    assert len(jobs) == 2
    for job, cc in zip(jobs, ("8.9", "9.0"), strict=True):
        roundtrip(job)
        assert_owned_and_labelled(job, p.engine)
        major, minor = cc.split(".")
        pod = pod_specs(job)
        assert_restricted(pod)
        assert pod["nodeSelector"] == {
            "nvidia.com/gpu.compute.major": major,
            "nvidia.com/gpu.compute.minor": minor,
        }
        c = pod["containers"][0]
        assert c["image"] == OperatorSettings().converter_tensorrt_image
        assert c["args"][-2:] == ["--compute-capability", cc]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert "--model" in c["args"] and f"/artifacts/ml/digits/engines/{p.engine}" in c["args"]
    assert jobs[0]["metadata"]["name"].endswith("-sm89") and jobs[1]["metadata"]["name"].endswith("-sm90")


def test_tensorrt_rtx_builds_in_one_cpu_job(make_plan: MakePlan) -> None:
    p = make_plan()
    (job,) = convert_job.convert_jobs(p)
    roundtrip(job)
    pod = pod_specs(job)
    c = pod["containers"][0]
    assert c["image"] == OperatorSettings().converter_image
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert "--compute-capability" not in c["args"]
    assert "nodeSelector" not in pod
    assert job["metadata"]["name"] == f"digits-convert-{p.engine}"


def test_imported_model_converts_from_the_source(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    spec = make_spec()
    spec["model"] = {"source": {"uri": "pvc://models/digits/model.onnx", "format": "onnx"}}
    p = make_plan(spec)
    (job,) = convert_job.convert_jobs(p)
    pod = pod_specs(job)
    c = pod["containers"][0]
    assert "--model" not in c["args"]
    assert {"name": "TRTFORGE_PVC_ROOT", "value": "/mnt/pvc"} in c["env"]
    assert {"name": "input-0", "mountPath": "/mnt/pvc/models", "readOnly": True} in c["volumeMounts"]
    assert p.model_location.uri == "pvc://models/digits/model.onnx"


def test_deployment(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    p = make_plan(
        make_spec(**{"serving.rollout": {"maxSurge": 2, "maxUnavailable": 1, "progressDeadlineSeconds": 90}})
    )
    dep = deployment.deployment(p, replicas=3)
    roundtrip(dep)
    assert_owned_and_labelled(dep, p.serving)
    s = dep["spec"]
    assert s["replicas"] == 3
    assert s["progressDeadlineSeconds"] == 90
    assert s["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 1}}
    assert s["selector"]["matchLabels"] == labels.predictor_selector("digits")
    tmpl = s["template"]
    assert tmpl["metadata"]["labels"][labels.REVISION] == p.serving
    assert tmpl["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert tmpl["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    pod = tmpl["spec"]
    assert_restricted(pod)
    c = pod["containers"][0]
    assert [(x["name"], x["containerPort"]) for x in c["ports"]] == [("http", 8080), ("grpc", 8081)]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert c["args"][:3] == ["serve", "--engine", f"/artifacts/ml/digits/engines/{p.engine}"]
    assert {"name": "artifacts", "mountPath": "/artifacts", "readOnly": True} in c["volumeMounts"]
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert "replicas" not in deployment.deployment(p, replicas=None)["spec"]


def test_replica_policy(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    auto = make_plan(
        make_spec(**{"serving.autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}})
    )
    assert deployment.desired_replicas(auto, None, None) == 2
    assert deployment.desired_replicas(auto, None, 5) == 5
    assert deployment.desired_replicas(auto, None, 50) == 6  # clamped
    assert deployment.desired_replicas(auto, {"spec": {"replicas": 4}}, 3) is None  # the autoscaler's
    fixed = make_plan(make_spec(**{"serving.autoscaling": {"enabled": False}, "serving.replicas": 3}))
    assert deployment.desired_replicas(fixed, {"spec": {"replicas": 4}}, 9) == 3
    # an operator without autoscaler (TRTFORGE_AUTOSCALER_ENABLED=false): spec.serving.replicas, any mode
    for mode in ("builtin", "hpa", "keda"):
        spec = make_spec(**{"serving.autoscaling": {"enabled": True, "mode": mode}, "serving.replicas": 3})
        off = make_plan(spec, settings=OperatorSettings(autoscaler_enabled=False))
        assert not deployment.autoscaling_active(off)
        assert deployment.desired_replicas(off, {"spec": {"replicas": 4}}, 9) == 3
        assert deployment.desired_replicas(off, None, None) == 3


def test_service_and_pdb(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    p = make_plan()
    svc = service.service(p)
    roundtrip(svc)
    assert svc["metadata"]["name"] == "digits"
    assert [x["port"] for x in svc["spec"]["ports"]] == [8080, 8081]
    assert svc["spec"]["selector"] == labels.predictor_selector("digits")
    assert pdb.pdb(p) is None  # minReplicas 1
    p2 = make_plan(
        make_spec(**{"serving.autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}})
    )
    budget = pdb.pdb(p2)
    assert budget is not None
    roundtrip(budget)
    assert budget["spec"]["maxUnavailable"] == 1
    p3 = make_plan(make_spec(**{"serving.autoscaling": {"enabled": False}, "serving.replicas": 2}))
    assert pdb.pdb(p3) is not None
    no_grpc = make_plan(make_spec(**{"serving.grpc": False}))
    assert [x["port"] for x in service.service(no_grpc)["spec"]["ports"]] == [8080]


def test_s3_storage_uses_scratch_volume_and_secret(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    p = make_plan(make_spec(storage={"uri": "s3://bucket/runs", "secretRef": {"name": "s3-creds"}}))
    assert p.engine_location.uri == f"s3://bucket/runs/ml/digits/engines/{p.engine}"
    job = train_job.train_job(p)
    roundtrip(job)
    pod = pod_specs(job)
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["artifacts"] == {"name": "artifacts", "emptyDir": {}}
    c = pod["containers"][0]
    assert c["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert f"s3://bucket/runs/ml/digits/models/{p.training}" in c["args"]


def test_default_storage_secret_applies_to_s3_stores_only(make_plan: MakePlan, make_spec: MakeSpec) -> None:
    settings = OperatorSettings(storage_secret="s3-default")
    s3 = make_plan(make_spec(storage={"uri": "s3://bucket/runs"}), settings=settings)
    assert s3.storage_secret == ("s3-default", "TRTFORGE_STORAGE_SECRET")
    for pod in (pod_specs(train_job.train_job(s3)), deployment.pod_template(s3)["spec"]):
        assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "s3-default"}}]
    own = make_plan(
        make_spec(storage={"uri": "s3://bucket/runs", "secretRef": {"name": "mine"}}), settings=settings
    )
    assert own.storage_secret == ("mine", "spec.storage.secretRef.name")
    assert pod_specs(train_job.train_job(own))["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "mine"}}
    ]
    pvc = make_plan(settings=settings)  # the default pvc:// store needs no credentials
    assert pvc.storage_secret is None
    assert "envFrom" not in pod_specs(train_job.train_job(pvc))["containers"][0]
    s3_default_store = make_plan(
        settings=OperatorSettings(storage_uri="s3://bucket/x", storage_secret="s3-default")
    )
    assert s3_default_store.storage_secret == ("s3-default", "TRTFORGE_STORAGE_SECRET")


@pytest.mark.parametrize("uri", ["pvc://trtforge-artifacts/", "pvc://trtforge-artifacts"])
def test_operator_default_store_replaces_the_schema_default(make_plan: MakePlan, uri: str) -> None:
    settings = OperatorSettings(storage_uri="pvc://shared/trtforge")
    p = make_plan(settings=settings)
    assert p.model_location.uri == f"pvc://shared/trtforge/ml/digits/models/{p.training}"


def test_cleanup_job_removes_only_this_deployments_folder(make_plan: MakePlan) -> None:
    from trtforge_operator.reconcilers import cleanup_job

    p = make_plan()
    job = cleanup_job.cleanup_job(p)
    roundtrip(job)
    assert "ownerReferences" not in job["metadata"]  # must outlive the ModelDeployment
    pod = pod_specs(job)
    assert_restricted(pod)
    c = pod["containers"][0]
    assert c["command"][-1] == "/artifacts/ml/digits" == cleanup_job.folder(p)
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert cleanup_job.supported(p)


def test_cleanup_script_removes_the_folder(tmp_path: Any) -> None:
    import subprocess
    import sys

    from trtforge_operator.reconcilers import cleanup_job

    target = tmp_path / "ml" / "digits" / "models" / "abc"
    target.mkdir(parents=True)
    (target / "model.onnx").write_bytes(b"x")
    keep = tmp_path / "ml" / "other"
    keep.mkdir()
    subprocess.run([sys.executable, "-c", cleanup_job.SCRIPT, str(tmp_path / "ml" / "digits")], check=True)
    assert not (tmp_path / "ml" / "digits").exists() and keep.exists()
