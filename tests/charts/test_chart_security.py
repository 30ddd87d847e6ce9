"""Every pod the chart creates, and every pod the operator creates from the chart's settings (training and
conversion Jobs, the serving Deployment) meets the Pod Security Standards "restricted" profile and the
project's rules, and the operator's children validate offline against the Kubernetes schemas."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from charts.chartlib import (
    Helm,
    by_kind,
    env_of,
    operator_children,
    operator_variants,
    pod_templates,
    restricted_violations,
    validate_objects,
    value_sets,
)

SETS = [None, *value_sets()]
IDS = ["default", *(p.stem for p in value_sets())]


@pytest.mark.parametrize("values", SETS, ids=IDS)
def test_chart_pods_are_restricted(helm: Helm, values: Path | None) -> None:
    docs = helm.template(*([values] if values else []))
    pods = [p for d in docs for p in pod_templates(d)]
    assert pods, "the chart renders no pod template"
    for where, pod in pods:
        assert restricted_violations(pod, where) == []


def test_the_check_finds_violations(helm: Helm) -> None:
    (deployment,) = by_kind(helm.template(), "Deployment")
    base = deployment["spec"]["template"]["spec"]
    assert restricted_violations(base, "ok") == []
    cases: list[tuple[str, Any]] = [
        (
            "runAsNonRoot",
            lambda p: (
                p["containers"][0]["securityContext"].pop("runAsNonRoot")
                and p["securityContext"].pop("runAsNonRoot")
            ),
        ),
        (
            "allowPrivilegeEscalation",
            lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        ),
        (
            "drop lacks ALL",
            lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
        ),
        (
            "capabilities.add",
            lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        ),
        (
            "seccompProfile",
            lambda p: (
                p["containers"][0]["securityContext"].pop("seccompProfile")
                and p["securityContext"].pop("seccompProfile")
            ),
        ),
        (
            "readOnlyRootFilesystem",
            lambda p: p["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
        ),
        ("privileged", lambda p: p["containers"][0]["securityContext"].update(privileged=True)),
        ("hostNetwork", lambda p: p.update(hostNetwork=True)),
        ("hostPath", lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}})),
        ("runAsUser 0", lambda p: p["containers"][0]["securityContext"].update(runAsUser=0)),
        ("/tmp", lambda p: p["containers"][0].update(volumeMounts=[])),
        ("fsGroup", lambda p: p["securityContext"].pop("fsGroup")),
        ("hostPort", lambda p: p["containers"][0]["ports"][0].update(hostPort=8090)),
    ]
    for expected, breaks in cases:
        pod = copy.deepcopy(base)
        breaks(pod)
        found = "\n".join(restricted_violations(pod, "Deployment/x"))
        assert expected in found, (expected, found)


@pytest.mark.parametrize("values", SETS, ids=IDS)
@pytest.mark.parametrize(
    ("variant", "manifest"), operator_variants(), ids=[v[0] for v in operator_variants()]
)
def test_operator_children_are_restricted_and_valid(
    helm: Helm, values: Path | None, variant: str, manifest: dict[str, Any]
) -> None:
    (chart_deployment,) = by_kind(helm.template(*([values] if values else [])), "Deployment")
    env = env_of(chart_deployment)
    children = operator_children(env, manifest)
    kinds = [c["kind"] for c in children]
    assert kinds.count("Job") >= 2 and "Deployment" in kinds, kinds
    assert validate_objects(children) == [], variant
    pods = [p for c in children for p in pod_templates(c)]
    for where, pod in pods:
        assert restricted_violations(pod, f"{variant}: {where}") == []
        # the images and pull settings are the chart's
        for container in pod["containers"]:
            assert container["image"] in {
                env["TRTFORGE_TRAINER_IMAGE"],
                env["TRTFORGE_CONVERTER_IMAGE"],
                env["TRTFORGE_CONVERTER_TENSORRT_IMAGE"],
                env["TRTFORGE_SERVER_IMAGE"],
            }
            assert container["imagePullPolicy"] == env["TRTFORGE_IMAGE_PULL_POLICY"]
        secrets = [s["name"] for s in pod.get("imagePullSecrets") or []]
        assert ",".join(secrets) == env["TRTFORGE_IMAGE_PULL_SECRETS"]
        assert pod.get("serviceAccountName", "default") == env["TRTFORGE_WORKLOAD_SERVICE_ACCOUNT"]
    if variant == "tensorrt":
        jobs = [
            c
            for c in children
            if c["kind"] == "Job" and c["metadata"]["name"] != children[1]["metadata"]["name"]
        ]
        images = {j["spec"]["template"]["spec"]["containers"][0]["image"] for j in jobs}
        assert images == {env["TRTFORGE_CONVERTER_TENSORRT_IMAGE"]}
