"""End to end on a real cluster: helm install, kubectl apply digits, Ready, V2 inference, scale, delete.

The tests run in file order on one session's release and ModelDeployment (conftest.py); the deletion test
comes last. Skipped, with the reason, when KUBECONFIG does not reach a cluster.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from e2e.cluster import Cluster
from e2e.e2elib import MD_LABEL, get_path, port_forward, wait_for

pytestmark = pytest.mark.e2e

COLUMNS = ["NAME", "PHASE", "REASON", "ACCURACY", "ENGINE", "READY", "URL", "AGE"]


def _cells(header: str, line: str) -> dict[str, str]:
    """A kubectl table row by column (an empty cell, such as REASON of a Ready object, stays empty)."""
    starts = [header.index(column) for column in COLUMNS]
    ends = [*starts[1:], None]
    return {c: line[s:e].strip() for c, s, e in zip(COLUMNS, starts, ends, strict=True)}


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.float32), data.target.astype(np.int64)


def _service_name(cluster: Cluster, name: str) -> str:
    selector = f"{MD_LABEL}={name},app.kubernetes.io/component=predictor"
    services = cluster.core().list_namespaced_service(cluster.namespace, label_selector=selector).items
    assert len(services) == 1, (
        f"expected one serving Service of {name}, found {[s.metadata.name for s in services]}"
    )
    service_name: str = services[0].metadata.name
    return service_name


def test_operator_installed(cluster: Cluster, release: str) -> None:
    proc = cluster.helm.run("status", release, "-n", cluster.namespace, "-o", "json")
    assert '"status":"deployed"' in proc.stdout.replace(" ", ""), proc.stdout
    crd = cluster.kubectl.run("get", "crd", "modeldeployments.trtforge.dev", "-o", "name").stdout.strip()
    assert crd == "customresourcedefinition.apiextensions.k8s.io/modeldeployments.trtforge.dev"


def test_operator_replicas_elect_one_leader(cluster: Cluster, release: str) -> None:
    """Two operator replicas (helm_install_args sets replicas=2): both Ready (a standby is ready), the
    Lease in the release namespace names one of them, and that one's /leader says so."""
    from kubernetes import client

    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=operator"
    pods = cluster.core().list_namespaced_pod(cluster.namespace, label_selector=selector).items
    running = [p for p in pods if p.metadata.deletion_timestamp is None]
    assert len(running) == 2, [p.metadata.name for p in pods]
    for pod in running:
        ready = {c.type: c.status for c in pod.status.conditions or []}
        assert ready.get("Ready") == "True", (pod.metadata.name, ready)
    leases = client.CoordinationV1Api(cluster.api).list_namespaced_lease(cluster.namespace).items
    holders = {lease.spec.holder_identity for lease in leases}
    names = {p.metadata.name for p in running}
    assert len(holders & names) == 1, (holders, names)  # exactly one operator pod leads
    (leader,) = holders & names
    answer = cluster.kubectl.run(
        "exec",
        "-n",
        cluster.namespace,
        leader,
        "--",
        "python",
        "-c",
        "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8090/readyz').read().decode())",
    ).stdout.strip()
    assert answer == "leader", answer


def test_ready_with_status(cluster: Cluster, model_deployment: dict[str, Any]) -> None:
    status = model_deployment["status"]
    spec = model_deployment["spec"]
    assert status["observedGeneration"] == model_deployment["metadata"]["generation"]
    assert status["model"]["accuracy"] >= spec["model"]["train"]["minAccuracy"]
    assert status["model"]["digest"]
    assert status["engine"]["backend"] == spec["engine"]["backend"]
    assert status["engine"]["precision"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    for kind in ("Trained", "EngineBuilt", "Available"):
        assert conditions.get(kind) == "True", f"condition {kind}: {status['conditions']}"
    name = model_deployment["metadata"]["name"]
    assert status["serving"]["url"] == f"http://{_service_name(cluster, name)}.{cluster.namespace}.svc:8080"


def test_kubectl_get_md_columns(cluster: Cluster, model_deployment: dict[str, Any]) -> None:
    name = model_deployment["metadata"]["name"]
    out = cluster.kubectl.run("get", "md", name, "-n", cluster.namespace).stdout.splitlines()
    assert out[0].split() == COLUMNS, out
    row = _cells(out[0], out[1])
    assert row["REASON"] == ""  # only a Failed object has a reason
    status = model_deployment["status"]
    assert row["NAME"] == name
    assert row["PHASE"] == "Ready"
    assert float(row["ACCURACY"]) == pytest.approx(status["model"]["accuracy"], abs=1e-6)
    assert row["ENGINE"] == status["engine"]["precision"]
    assert int(row["READY"]) >= 1
    assert row["URL"] == status["serving"]["url"]
    # the short name and the plural resolve to the same kind
    plural = cluster.kubectl.run(
        "get", "modeldeployments.trtforge.dev", "-n", cluster.namespace, "-o", "name"
    )
    assert plural.stdout.split() == [f"modeldeployment.trtforge.dev/{name}"]


def test_v2_inference_predicts_digits(cluster: Cluster, model_deployment: dict[str, Any]) -> None:
    import tritonclient.http as httpclient

    name = model_deployment["metadata"]["name"]
    arch = model_deployment["spec"]["model"]["train"]["architecture"]
    input_name, output_name = arch.get("inputName", "pixels"), arch.get("outputName", "probabilities")
    max_batch = int(model_deployment["spec"]["engine"]["batch"]["max"])
    x, y = _digits()
    with port_forward(
        cluster.kubectl, cluster.namespace, f"svc/{_service_name(cluster, name)}", [8080]
    ) as ports:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{ports[8080]}", network_timeout=60.0)
        try:
            assert client.is_server_live() and client.is_server_ready()
            assert client.is_model_ready(name)
            metadata = client.get_model_metadata(name)
            assert [i["name"] for i in metadata["inputs"]] == [input_name]
            assert output_name in [o["name"] for o in metadata["outputs"]]
            predictions = []
            for start in range(0, len(x), max_batch):
                rows = x[start : start + max_batch]
                inp = httpclient.InferInput(input_name, list(rows.shape), "FP32")
                inp.set_data_from_numpy(rows, binary_data=start % 2 == 0)  # JSON and binary tensors
                out = httpclient.InferRequestedOutput(output_name, binary_data=True)
                result = client.infer(name, [inp], outputs=[out], request_id=f"e2e-{start}")
                probs = result.as_numpy(output_name)
                assert probs is not None and probs.shape == (len(rows), 10)
                np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-2)  # softmax rows
                predictions.append(probs.argmax(axis=1))
        finally:
            client.close()
    predicted = np.concatenate(predictions)
    accuracy = float((predicted == y).mean())
    # all 1,797 images (train + test rows): at least the quality gate the model passed
    assert accuracy >= model_deployment["spec"]["model"]["train"]["minAccuracy"], accuracy


def test_v2_grpc_inference(cluster: Cluster, model_deployment: dict[str, Any]) -> None:
    if not model_deployment["spec"]["serving"].get("grpc", True):
        pytest.skip("spec.serving.grpc is false")
    import tritonclient.grpc as grpcclient

    name = model_deployment["metadata"]["name"]
    arch = model_deployment["spec"]["model"]["train"]["architecture"]
    input_name, output_name = arch.get("inputName", "pixels"), arch.get("outputName", "probabilities")
    x, y = _digits()
    rows, labels = x[:64], y[:64]
    with port_forward(
        cluster.kubectl, cluster.namespace, f"svc/{_service_name(cluster, name)}", [8081]
    ) as ports:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{ports[8081]}")
        try:
            assert client.is_server_ready() and client.is_model_ready(name)
            inp = grpcclient.InferInput(input_name, list(rows.shape), "FP32")
            inp.set_data_from_numpy(rows)
            result = client.infer(name, [inp], outputs=[grpcclient.InferRequestedOutput(output_name)])
        finally:
            client.close()
    probs = result.as_numpy(output_name)
    assert probs is not None and probs.shape == (64, 10)
    assert float((probs.argmax(axis=1) == labels).mean()) >= 0.9


def test_kubectl_scale(cluster: Cluster, model_deployment: dict[str, Any]) -> None:
    name = model_deployment["metadata"]["name"]
    ns = cluster.namespace
    cluster.kubectl.run("scale", "md", name, "-n", ns, "--replicas=2")
    assert get_path(cluster.get_md(name), "spec", "serving", "replicas") == 2

    def scaled() -> bool | None:
        md = cluster.get_md(name)
        selector = get_path(md, "status", "serving", "selector")
        if get_path(md, "status", "serving", "readyReplicas") != 2 or not selector:
            return None
        pods = cluster.core().list_namespaced_pod(ns, label_selector=selector).items
        ready = [
            p
            for p in pods
            if p.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        return True if len(ready) == 2 else None

    wait_for(
        f"{name} to serve with 2 ready replicas",
        scaled,
        cluster.settings.scale_timeout,
        describe=lambda: cluster.diagnose(name),
    )
    scale = json.loads(
        cluster.kubectl.run("get", "md", name, "-n", ns, "--subresource=scale", "-o", "json").stdout
    )
    assert scale["spec"]["replicas"] == 2 and scale["status"]["replicas"] == 2, scale
    row = cluster.kubectl.run("get", "md", name, "-n", ns, "--no-headers").stdout.split()
    assert row[1] == "Ready" and row[4] == "2", row


def _children(cluster: Cluster, name: str) -> dict[str, list[str]]:
    from kubernetes import client

    selector = f"{MD_LABEL}={name}"
    ns = cluster.namespace
    batch = client.BatchV1Api(cluster.api)
    policy = client.PolicyV1Api(cluster.api)
    core, apps = cluster.core(), cluster.apps()
    found = {
        "Deployment": apps.list_namespaced_deployment(ns, label_selector=selector).items,
        "Service": core.list_namespaced_service(ns, label_selector=selector).items,
        "ConfigMap": core.list_namespaced_config_map(ns, label_selector=selector).items,
        "Job": batch.list_namespaced_job(ns, label_selector=selector).items,
        "PodDisruptionBudget": policy.list_namespaced_pod_disruption_budget(
            ns, label_selector=selector
        ).items,
        "Pod": core.list_namespaced_pod(ns, label_selector=selector).items,
    }
    return {kind: [o.metadata.name for o in items] for kind, items in found.items() if items}


def test_delete_garbage_collects_children(cluster: Cluster, model_deployment: dict[str, Any]) -> None:
    name = model_deployment["metadata"]["name"]
    before = _children(cluster, name)
    assert before.get("Deployment") and before.get("Service"), before
    cluster.kubectl.run(
        "delete",
        "md",
        name,
        "-n",
        cluster.namespace,
        "--wait=true",
        f"--timeout={int(cluster.settings.delete_timeout)}s",
        timeout=cluster.settings.delete_timeout + 30,
    )
    assert cluster.get_md(name) is None
    wait_for(
        f"the children of {name} to be garbage-collected",
        lambda: True if not _children(cluster, name) else None,
        cluster.settings.delete_timeout,
        describe=lambda: f"left: {_children(cluster, name)}",
    )
    # artifacts are kept: the claim outlives the ModelDeployment
    claims = cluster.core().list_namespaced_persistent_volume_claim(cluster.namespace).items
    assert claims, "the artifact claim was deleted with the ModelDeployment"
