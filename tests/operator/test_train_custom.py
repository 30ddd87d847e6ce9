"""The training Job for custom training code (spec.model.train.custom): the user's image, the same
command, environment, GPU placement and multi-worker wiring as declarative training."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers import configmap, train_job
from trtforge_operator.settings import OperatorSettings
from trtforge_runtime.spec.load import parse_manifest

MakePlan = Callable[..., Plan]
MakeSpec = Callable[..., dict[str, Any]]

CUSTOM = {
    "image": "registry.example.com/team/trainer:1.4",
    "entryPoint": "train_digits:train",
    "code": "pvc://team-code/digits/train_digits.py",
    "timeoutSeconds": 1800,
}


def _custom_spec(make_spec: MakeSpec, **changes: Any) -> dict[str, Any]:
    spec = make_spec(**changes)
    train = spec["model"]["train"]
    train.pop("architecture")
    train["custom"] = dict(CUSTOM)
    return spec


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


def test_custom_code_runs_in_the_users_image_with_the_same_command(
    make_plan: MakePlan, make_spec: MakeSpec
) -> None:
    from kubernetes.client import ApiClient

    declarative = make_plan()
    p = make_plan(
        _custom_spec(make_spec, **{"model.train.resources": {"gpus": 1, "cpu": "4", "memory": "8Gi"}})
    )
    job = train_job.train_job(p)
    api = ApiClient()  # a faithful V1Job: every field known and well typed
    assert (
        api.sanitize_for_serialization(api._ApiClient__deserialize(json.loads(json.dumps(job)), "V1Job"))
        == job
    )
    c = _container(job)
    assert c["image"] == CUSTOM["image"] != OperatorSettings().trainer_image
    # the same `trtforge train` as declarative training: it runs the code, then exports and gates
    assert c["command"] == ["trtforge"] and c["args"] == [
        "train",
        "-f",
        "/etc/trtforge/modeldeployment.yaml",
        "-o",
        p.model_location.path,
        "--overwrite",
        "--progress",
        "lines",
    ]
    assert {e["name"] for e in c["env"]} == {
        e["name"] for e in _container(train_job.train_job(declarative))["env"]
    }
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    pod = job["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    # the code's claim is mounted read-only where the runtime looks for pvc:// URIs
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/mnt/pvc/team-code"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = [
        v["persistentVolumeClaim"]["claimName"] for v in volumes.values() if "persistentVolumeClaim" in v
    ]
    assert "team-code" in claims
    # the pod reads the spec with custom from its ConfigMap
    cm = configmap.config_map(p, "train", p.training)
    (doc,) = cm["data"].values()
    md = parse_manifest(yaml.safe_load(doc))
    assert md.spec.model.train is not None and md.spec.model.train.custom is not None
    assert md.spec.model.train.custom.entry_point == "train_digits:train"


def test_custom_code_without_an_image_uses_the_trainer_image(
    make_plan: MakePlan, make_spec: MakeSpec
) -> None:
    spec = _custom_spec(make_spec)
    del spec["model"]["train"]["custom"]["image"]
    assert _container(train_job.train_job(make_plan(spec)))["image"] == OperatorSettings().trainer_image


def test_multi_worker_custom_code_gets_tf_config_like_declarative(
    make_plan: MakePlan, make_spec: MakeSpec
) -> None:
    p = make_plan(_custom_spec(make_spec, **{"model.train.workers": 2}))
    job = train_job.train_job(p)
    c = _container(job)
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
    assert c["image"] == CUSTOM["image"] and c["command"] == ["/bin/sh"]
    assert c["args"][:2] == ["-c", train_job.TF_CONFIG_SCRIPT] and "train" in c["args"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert json.loads(env["TRTFORGE_TF_CLUSTER"])["worker"] == train_job.worker_hosts(p)
    assert train_job.train_service(p) is not None
