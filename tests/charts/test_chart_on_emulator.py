"""The rendered chart installed on the Kubernetes API emulator with `kubectl apply --validate=false`, and
the operator started exactly as the chart's Deployment starts it (its args and env, as read back from the
API) reconciles examples/digits.yaml: training Job, then conversion Job once training succeeded.

Every API request the operator process makes is recorded and checked against the chart's RBAC: what it
uses must be granted (and nothing in the chart is a wildcard, see test_chart_rbac.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from charts.chartlib import REPO, Helm, grants, restricted_violations

NAMESPACE = "trtforge-system"
RELEASE = "forge"
LABEL = "trtforge.dev/modeldeployment"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rbac_request(
    method: str, path: str, query: dict[str, str]
) -> tuple[str | None, tuple[str, str, str]] | None:
    """An API request -> (namespace or None, (apiGroup, resource[/subresource], verb)) as RBAC sees it."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None  # discovery, /version: granted to every authenticated user
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
    if sub:
        resource = f"{resource}/{sub}"
    verb = {
        "GET": "get" if name else ("watch" if query.get("watch") in {"true", "1"} else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method]
    return namespace, (group, resource, verb)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubectl: str) -> Iterator[tuple[Any, list[Any]]]:
    """The emulator in a thread, a kubeconfig for it, and the log of (method, path, query, user agent)."""
    from kube_emulator.helpers import Kube
    from kube_emulator.runner import EmulatorThread
    from kube_emulator.server import ApiServer

    requests: list[tuple[str, str, dict[str, str], str]] = []
    dispatch = ApiServer._dispatch

    async def recorded(self: Any, request: Any) -> Any:
        requests.append(
            (request.method, request.path, dict(request.query), request.headers.get("User-Agent", ""))
        )
        return await dispatch(self, request)

    monkeypatch.setattr(ApiServer, "_dispatch", recorded)
    thread = EmulatorThread().start()
    try:
        kube = Kube(thread, thread.write_kubeconfig(tmp_path / "kubeconfig"))
        yield kube, requests
    finally:
        thread.stop()


def _wait(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the operator exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _phase(kube: Any) -> str | None:
    obj = kube.get("trtforge.dev/v1alpha1", "ModelDeployment", "digits", "default") or {}
    return (obj.get("status") or {}).get("phase")


# Rights the chart grants that a run of the example to Ready does not exercise, each with the code path
# that needs it. Any other granted right the run does not use fails the test: RBAC stays least privilege.
NOT_EXERCISED = {
    ("batch", "jobs", "delete"): "a running Job superseded by a new revision, or a retried stage",
    ("batch", "jobs", "get"): "a Job create answered 409 (created by an earlier attempt)",
    ("", "configmaps", "delete"): "the spec ConfigMaps of revisions older than the kept ones",
    ("", "configmaps", "list"): "pruning the ConfigMaps of old revisions",
    ("policy", "poddisruptionbudgets", "create"): "a replica floor above 1",
    ("policy", "poddisruptionbudgets", "patch"): "a replica floor above 1 that changes",
    ("policy", "poddisruptionbudgets", "delete"): "a replica floor that drops back to 1",
    ("apps", "deployments/scale", "patch"): "a decision of the built-in autoscaler",
    ("", "pods/log", "get"): "the last log lines of a failed stage",
    ("", "services", "patch"): "a Service that differs from the desired one",
    ("trtforge.dev", "modeldeployments", "patch"): "finalizers (retainOnDelete: false), the retry annotation",
    ("trtforge.dev", "modeldeployments/finalizers", "update"): "ownerReferences with blockOwnerDeletion",
    ("", "secrets", "get"): "spec.storage.secretRef in a watched namespace",
    ("autoscaling", "horizontalpodautoscalers", "get"): "hpa mode, a create that conflicts (else watched)",
    ("autoscaling", "horizontalpodautoscalers", "create"): "autoscaling mode hpa",
    ("autoscaling", "horizontalpodautoscalers", "patch"): "autoscaling mode hpa",
    ("autoscaling", "horizontalpodautoscalers", "delete"): "leaving autoscaling mode hpa",
    ("coordination.k8s.io", "leases", "create"): "the first replica ever (the test's Lease may exist)",
    # reconciles read from the watch caches; the API is read where the cache may be behind
    ("", "configmaps", "get"): "a ConfigMap create answered 409 (the watch cache behind)",
    ("", "services", "get"): "a Service create answered 409 (the watch cache behind)",
    ("policy", "poddisruptionbudgets", "get"): "a PodDisruptionBudget create answered 409",
    ("trtforge.dev", "modeldeployments", "get"): "a trigger before the object's watch event is cached",
}


def _jobs(kube: Any) -> list[dict[str, Any]]:
    return [
        j
        for j in kube.list("batch/v1", "Job", "default")
        if (j["metadata"].get("labels") or {}).get(LABEL) == "digits"
    ]


@pytest.mark.parametrize("watch", ["all", "namespaced"])
def test_chart_installs_and_its_operator_reconciles_the_example(
    helm: Helm, cluster: tuple[Any, list[Any]], tmp_path: Path, watch: str
) -> None:
    """All namespaces watched (ClusterRole) and one namespace watched (Role there, CRD reads cluster-wide)."""
    kube, requests = cluster
    port = _free_port()
    sets = [f"healthPort={port}"] + (["watchNamespaces={default}"] if watch == "namespaced" else [])
    docs = helm.template(sets=sets, release=RELEASE, namespace=NAMESPACE)
    rendered = tmp_path / "chart.yaml"

    # install: the namespace, then everything the chart renders (CRDs included), as a user would
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (NAMESPACE, "default")
    ]
    # JSON documents (valid YAML): every string stays a string for kubectl's YAML 1.1 reader, which a
    # PyYAML dump would not guarantee (it leaves `y` / `n` unquoted, kubectl reads them as booleans)
    rendered.write_text("\n---\n".join(json.dumps(doc) for doc in [*namespaces, *docs]) + "\n")
    kube.kubectl("apply", "--validate=false", "-f", str(rendered))
    for doc in docs:
        meta = doc["metadata"]
        assert kube.get(doc["apiVersion"], doc["kind"], meta["name"], meta.get("namespace")), doc["kind"]

    # the operator as the chart's Deployment runs it: args and env read back from the API
    deployment = kube.get("apps/v1", "Deployment", f"{RELEASE}-trtforge", NAMESPACE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert restricted_violations(deployment["spec"]["template"]["spec"], "operator") == []
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(POD_NAME="forge-trtforge-0", POD_NAMESPACE=NAMESPACE)
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith("TRTFORGE_")}
    proc_env.update(env, KUBECONFIG=str(kube.kubeconfig), HOME=str(tmp_path))
    log = (tmp_path / "operator.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trtforge_runtime.cli", *container["args"]],
        env=proc_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        # liveness: the probe the kubelet would run
        probe = container["livenessProbe"]["httpGet"]
        url = f"http://127.0.0.1:{port}{probe['path']}"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=1) as rsp:
                    return bool(rsp.status == 200)
            except OSError:
                return False

        _wait(healthy, 60, f"the operator's liveness endpoint {url}", proc)

        kube.kubectl(
            "apply", "--validate=false", "-n", "default", "-f", str(REPO / "examples" / "digits.yaml")
        )
        (train,) = _wait(lambda: _jobs(kube), 30, "the training Job", proc)
        pod = train["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == env["TRTFORGE_TRAINER_IMAGE"]
        assert restricted_violations(pod, "train Job") == []
        claims = [
            v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
        ]
        assert "trtforge-artifacts" in claims  # the chart's default store
        # the quickstart works as written: the claim exists where the example was applied (`default`,
        # not the release namespace), created by the operator before the Job
        claim = kube.get("v1", "PersistentVolumeClaim", "trtforge-artifacts", "default")
        assert (
            claim is not None
            and claim["metadata"]["creationTimestamp"] <= train["metadata"]["creationTimestamp"]
        )

        # play the job controller: training succeeds -> the operator starts the conversion Job
        kube.complete_job(
            "default",
            train["metadata"]["name"],
            termination_message={
                "ok": True,
                "stage": "train",
                "accuracy": 0.975,
                "digest": "sha256:" + "ab" * 32,
            },
        )
        jobs = _wait(
            lambda: [j for j in _jobs(kube) if j["metadata"]["name"] != train["metadata"]["name"]],
            30,
            "the conversion Job",
            proc,
        )
        convert = jobs[0]["spec"]["template"]["spec"]
        assert convert["containers"][0]["image"] == env["TRTFORGE_CONVERTER_IMAGE"]
        assert restricted_violations(convert, "convert Job") == []
        # the status write follows the Job's creation in the same reconcile: wait for it
        _wait(
            lambda: (
                (
                    kube.get("trtforge.dev/v1alpha1", "ModelDeployment", "digits", "default").get("status")
                    or {}
                ).get("phase")
                == "Converting"
            ),
            10,
            "phase Converting",
            proc,
        )
        # conversion succeeds -> the serving Deployment, its Service; ready pods -> Ready
        kube.complete_job(
            "default",
            jobs[0]["metadata"]["name"],
            termination_message={"ok": True, "stage": "convert", "precision": "fp16", "sizeBytes": 1000},
        )
        dep = _wait(
            lambda: kube.get("apps/v1", "Deployment", "digits-predictor", "default"), 30, "Deployment", proc
        )
        kube.make_deployment_ready("default", dep["metadata"]["name"])
        _wait(lambda: _phase(kube) == "Ready", 30, "phase Ready", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()

    # least privilege holds up: everything the operator asked of the API, the chart granted (a namespaced
    # request by the ClusterRole or by the Role of that namespace, a cluster-scoped one by the ClusterRole)
    cluster_rules = grants(docs, "ClusterRole")
    used = [
        r
        for method, path, query, agent in requests
        if not agent.startswith("kubectl")
        for r in [_rbac_request(method, path, query)]
        if r is not None
    ]
    assert used, "no request from the operator was recorded"
    missing = sorted(
        {
            (ns or "<cluster>", *triple)
            for ns, triple in used
            if triple not in cluster_rules and (ns is None or triple not in grants(docs, "Role", ns))
        }
    )
    text = (tmp_path / "operator.log").read_text()
    assert missing == [], f"the operator used rights the chart does not grant: {missing}\n{text[-3000:]}"
    # ... and nothing is granted that the run did not use, unless NOT_EXERCISED names the path needing it
    ns = "default"
    granted = cluster_rules | grants(docs, "Role", ns) | grants(docs, "Role", NAMESPACE)
    used_triples = {t for _, t in used}
    unused = sorted(t for t in granted - used_triples if t not in NOT_EXERCISED)
    assert unused == [], f"granted but never used (remove them, or say in NOT_EXERCISED why): {unused}"
    cluster_scoped = {t for ns, t in used if ns is None}
    if watch == "namespaced":  # only reads of CRDs and namespace names outside the watched namespaces
        assert {t[1] for t in cluster_scoped} <= {"customresourcedefinitions", "namespaces"}, cluster_scoped
