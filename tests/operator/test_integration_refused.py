"""A child the API server refuses (4xx) makes the ModelDeployment Failed with the server's message, once:
no retry loop with back-off, no stale phase."""

from __future__ import annotations

import time
from typing import Any

from kube_emulator.helpers import Kube
from test_integration import CONVERT_OK, NS, TRAIN_OK, conditions, digits, md, wait_jobs, wait_phase

CRD = "modeldeployments.trtforge.dev"


def _drop_name_rules(kube: Kube) -> None:
    """An older CRD without the metadata.name rules (objects made before an upgrade look like this)."""
    crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD)
    assert crd is not None
    versions = crd["spec"]["versions"]
    versions[0]["schema"]["openAPIV3Schema"].pop("x-kubernetes-validations")
    kube.patch("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD, {"spec": {"versions": versions}})


def test_a_refused_child_fails_the_object_once(cluster: Kube, operator: Any) -> None:
    _drop_name_rules(cluster)
    doc = digits()
    doc["metadata"]["name"] = "digits.v2"  # a valid Job name, an invalid Service name
    cluster.apply(doc)
    (train,) = wait_jobs(cluster, "train", name="digits.v2")
    cluster.complete_job(NS, train["metadata"]["name"], termination_message=TRAIN_OK)
    (conv,) = wait_jobs(cluster, "convert", name="digits.v2")
    cluster.complete_job(NS, conv["metadata"]["name"], termination_message=CONVERT_OK)

    obj = wait_phase(cluster, "Failed", name="digits.v2")
    degraded = conditions(obj)["Degraded"]
    assert degraded["status"] == "True" and degraded["reason"] == "InvalidSpec"
    assert obj["status"]["reason"] == "InvalidSpec"
    assert "Kubernetes API error 422" in obj["status"]["message"]
    assert "DNS-1035 label" in obj["status"]["message"]  # the API server's own words

    def refused_events() -> list[dict[str, Any]]:
        return [e for e in cluster.events(NS, "digits.v2") if e["reason"] == "InvalidSpec"]

    cluster.wait_for(refused_events, message="an InvalidSpec Event")
    time.sleep(1.5)
    events = refused_events()
    assert len(events) == 1 and events[0]["type"] == "Warning" and "DNS-1035" in events[0]["message"]
    rv = md(cluster, "digits.v2")["metadata"]["resourceVersion"]
    time.sleep(1.0)
    assert md(cluster, "digits.v2")["metadata"]["resourceVersion"] == rv  # no retry loop rewriting status
    assert operator.log().count("Kubernetes API error 422") <= 2
