"""Deployments and Services in the box with a small real server (Python's http.server in the trainer
image): rollouts stay within maxSurge/maxUnavailable, the Service proxy balances over ready pods and
refuses without them, and a deleted pod goes in Kubernetes' order (out of the endpoints, preStop,
SIGTERM, SIGKILL after the grace period)."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_box.box import ClusterBox
from cluster_box.volumes import claim_folder
from kube_emulator.fixtures import start_kube
from kube_emulator.helpers import Kube

NS = "web"
SERVER = """
import http.server, os, pathlib, signal, sys, time
events = pathlib.Path(os.environ["EVENTS"])
def term(*_):
    with events.open("a") as f:
        f.write(f"sigterm {os.environ['HOSTNAME']} {time.time()}\\n")
    if not os.environ.get("IGNORE_TERM"):
        sys.exit(0)
signal.signal(signal.SIGTERM, term)
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["HOSTNAME"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), Hello).serve_forever()
"""


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Kube, ClusterBox]]:
    thread, kube = start_kube(tmp_path)
    kube.create_namespace(NS)
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "events", "namespace": NS},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    cbox = ClusterBox(kube, tmp_path / "box", tick=0.1).start()
    try:
        yield kube, cbox
    finally:
        cbox.stop()
        thread.stop()


def deployment(
    replicas: int, version: str = "1", ignore_term: bool = False, grace: int = 30
) -> dict[str, Any]:
    env = [{"name": "EVENTS", "value": "/events/log"}, {"name": "VERSION", "value": version}]
    if ignore_term:
        env.append({"name": "IGNORE_TERM", "value": "1"})
    container = {
        "name": "web",
        "image": "ghcr.io/trtforge/trainer:0.1.0",
        "command": ["python3", "-c", SERVER],
        "env": env,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        "lifecycle": {
            "preStop": {"exec": {"command": ["sh", "-c", "echo prestop $HOSTNAME >> /events/log"]}}
        },
        "volumeMounts": [{"name": "events", "mountPath": "/events"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "containers": [container],
                    "volumes": [{"name": "events", "persistentVolumeClaim": {"claimName": "events"}}],
                },
            },
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": NS},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


def ready(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def get(address: str) -> str:
    conn = http.client.HTTPConnection(address, 80, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def test_rollout_stays_within_max_surge_and_max_unavailable(box: tuple[Kube, ClusterBox]) -> None:
    kube, cbox = box
    kube.create(deployment(3))
    cbox.wait_for(lambda: sum(ready(p) for p in kube.pods(NS)) == 3, 60, "3 ready pods")
    kube.patch("apps/v1", "Deployment", "web", {"spec": deployment(3, version="2")["spec"]}, NS)
    most_pods, fewest_ready = 0, 3
    deadline = time.monotonic() + 90
    while True:
        pods = [p for p in kube.pods(NS) if not p["metadata"].get("deletionTimestamp")]
        most_pods = max(most_pods, len(pods))
        fewest_ready = min(fewest_ready, sum(ready(p) for p in pods))
        dep = kube.get("apps/v1", "Deployment", "web", NS) or {}
        st = dep.get("status") or {}
        current = st.get("observedGeneration") == dep["metadata"]["generation"]
        if (
            current
            and st.get("updatedReplicas") == 3
            and st.get("readyReplicas") == 3
            and st.get("replicas") == 3
        ):
            break
        assert time.monotonic() < deadline, f"rollout not done: {st}"
        time.sleep(0.05)
    assert most_pods <= 4, most_pods  # replicas + maxSurge
    assert fewest_ready >= 3, fewest_ready  # replicas - maxUnavailable
    versions = {
        next(e["value"] for e in p["spec"]["containers"][0]["env"] if e["name"] == "VERSION")
        for p in kube.pods(NS)
        if not p["metadata"].get("deletionTimestamp")
    }
    assert versions == {"2"}
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert not cbox.errors


def test_the_service_balances_over_ready_pods_and_refuses_without(box: tuple[Kube, ClusterBox]) -> None:
    kube, cbox = box
    kube.create(deployment(2))
    kube.create(SERVICE)
    cbox.wait_for(lambda: sum(ready(p) for p in kube.pods(NS)) == 2, 60, "2 ready pods")
    address = cbox.service_address(NS, "web")
    names = {p["metadata"]["name"] for p in kube.pods(NS)}
    ips = {p["status"]["podIP"] for p in kube.pods(NS)}
    assert len(ips) == 2 and all(ip.startswith(cbox.pod_network + ".") for ip in ips)
    seen = cbox.wait_for(lambda: {get(address) for _ in range(6)} == names or None, 20, "both pods to answer")
    assert seen
    endpoints = kube.get("v1", "Endpoints", "web", NS) or {}
    subset = endpoints["subsets"][0]
    assert {a["ip"] for a in subset["addresses"]} == ips and subset["ports"][0]["port"] == 8080
    kube.patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 0}}, NS)
    cbox.wait_for(lambda: not kube.pods(NS), 60, "the pods to go")

    def refused() -> bool:
        try:
            get(address)
        except OSError:
            return True
        return False

    assert cbox.wait_for(refused, 10, "connections to be refused")
    assert not cbox.errors


def test_a_deleted_pod_goes_in_kubernetes_order(box: tuple[Kube, ClusterBox]) -> None:
    kube, cbox = box
    kube.create(deployment(1, ignore_term=True, grace=2))
    kube.create(SERVICE)
    cbox.wait_for(lambda: any(ready(p) for p in kube.pods(NS)), 60, "a ready pod")
    pod = kube.pods(NS)[0]
    name = pod["metadata"]["name"]
    cbox.wait_for(lambda: (kube.get("v1", "Endpoints", "web", NS) or {}).get("subsets"), 10, "the endpoint")
    started = time.monotonic()
    kube.delete("v1", "Pod", name, NS)
    terminating = kube.get("v1", "Pod", name, NS)
    assert terminating is not None and terminating["metadata"].get("deletionTimestamp")  # graceful
    ip = pod["status"]["podIP"]

    def endpoint_ips() -> set[str]:
        subsets = (kube.get("v1", "Endpoints", "web", NS) or {}).get("subsets") or []
        return {a["ip"] for s in subsets for a in s.get("addresses") or []}

    cbox.wait_for(lambda: ip not in endpoint_ips(), 5, "the terminating pod to leave the endpoints")
    cbox.wait_for(lambda: kube.get("v1", "Pod", name, NS) is None, 30, "the pod to go")
    took = time.monotonic() - started
    assert took >= 2.0, took  # SIGTERM was ignored: SIGKILL only after the 2 s grace period
    log = (claim_folder(cbox.root, NS, "events") / "log").read_text().split()
    assert log[:2] == ["prestop", name] and log[2:4] == ["sigterm", name], log
    assert not cbox.errors
