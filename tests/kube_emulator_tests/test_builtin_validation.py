"""The emulator refuses built-in objects the way kube-apiserver does: names per kind, labels (also on pod
templates), resource quantities, node selectors and tolerations."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kube_emulator.errors import ApiError
from kube_emulator.helpers import Kube

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "main", "image": "example/web:1", "resources": {"limits": {"cpu": "1"}}}
                ]
            },
        },
    },
}


def deployment(**pod: Any) -> dict[str, Any]:
    obj = copy.deepcopy(DEPLOYMENT)
    spec = obj["spec"]["template"]["spec"]
    if "cpu" in pod:
        spec["containers"][0]["resources"] = {"limits": {"cpu": pod.pop("cpu")}}
    spec.update(pod)
    return obj


def refused(kube: Kube, obj: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as info:
        kube.create(obj, "default")
    return info.value


@pytest.mark.parametrize("name", ["digits.v2", "2digits", "d" * 64])
def test_service_names_are_dns_1035_labels(kube: Kube, name: str) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80}]},
    }
    err = refused(kube, svc)
    assert err.code == 422 and "DNS-1035 label" in err.message


def test_a_deployment_may_have_a_dotted_name(kube: Kube) -> None:
    obj = deployment()
    obj["metadata"]["name"] = "web.v2"
    kube.create(obj, "default")


def test_job_names_longer_than_a_label_value_are_refused(kube: Kube) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j" * 64},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "x:1"}]}}
        },
    }
    err = refused(kube, job)
    assert err.code == 422 and "spec.template.metadata.labels" in err.message  # job-name: the Job's name


@pytest.mark.parametrize("cpu", ["1.2.3", "1e", "2 cores"])
def test_malformed_quantities_cannot_be_decoded(kube: Kube, cpu: str) -> None:
    err = refused(kube, deployment(cpu=cpu))
    assert err.code == 400 and "quantities must match the regular expression" in err.message


def test_negative_quantities_are_invalid(kube: Kube) -> None:
    err = refused(kube, deployment(cpu="-2"))
    assert err.code == 422 and "must be greater than or equal to 0" in err.message


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        ({"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]}, "value must be empty"),
        ({"tolerations": [{"operator": "Equal", "value": "x"}]}, "operator must be Exists"),
        ({"tolerations": [{"key": "a", "tolerationSeconds": 3}]}, "effect must be 'NoExecute'"),
        ({"nodeSelector": {"gpu type": "a"}}, "name part must consist of"),
        ({"nodeSelector": {"pool": "a b"}}, "a valid label must be"),
    ],
)
def test_pod_placement_is_validated(kube: Kube, pod: dict[str, Any], message: str) -> None:
    err = refused(kube, deployment(**pod))
    assert err.code == 422 and message in err.message


def test_valid_pod_specs_pass(kube: Kube) -> None:
    kube.create(
        deployment(
            cpu="500m",
            nodeSelector={"nvidia.com/gpu.product": "H100"},
            tolerations=[{"operator": "Exists"}, {"key": "k", "effect": "NoExecute", "tolerationSeconds": 5}],
        ),
        "default",
    )
