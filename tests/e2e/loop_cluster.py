"""A real cluster behind tests/cluster_box's scenario (`LoopCluster`): the same steps as in the box.

Objects are read with `kubectl get -o json`; HTTP clients reach the Service through the API server's
service proxy (`kubectl proxy`, which picks a ready endpoint per request, so a rollout is seen as a cluster
client sees it), gRPC through `kubectl port-forward svc/...`; the operator "crashes" by a forced deletion
of its pod (`--grace-period=0 --force`: the container is killed without a graceful stop).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
from typing import Any

from e2e.cluster import Cluster, operator_available
from e2e.e2elib import MD_LABEL, port_forward, wait_for

RESOURCES = {
    ("trtforge.dev/v1alpha1", "ModelDeployment"): "modeldeployments.trtforge.dev",
    ("batch/v1", "Job"): "jobs.batch",
    ("apps/v1", "Deployment"): "deployments.apps",
    ("apps/v1", "ReplicaSet"): "replicasets.apps",
    ("v1", "Pod"): "pods",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Event"): "events",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RealCluster:
    def __init__(self, cluster: Cluster, release: str, model_name: str) -> None:
        self.cluster = cluster
        self.release = release
        self.model_name = model_name
        self.namespace = cluster.namespace
        self._proxy: subprocess.Popen[str] | None = None
        self._proxy_port = 0
        self._forward: contextlib.ExitStack | None = None

    def _resource(self, api_version: str, kind: str) -> str:
        return RESOURCES[(api_version, kind)]

    def get(self, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
        out = self.cluster.kubectl.run(
            "get",
            self._resource(api_version, kind),
            name,
            "-n",
            self.namespace,
            "-o",
            "json",
            "--ignore-not-found",
        ).stdout.strip()
        return json.loads(out) if out else None

    def objects(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        out = self.cluster.kubectl.run(
            "get", self._resource(api_version, kind), "-n", self.namespace, "-o", "json"
        ).stdout
        return list(json.loads(out)["items"])

    def kubectl(self, *args: str) -> None:
        self.cluster.kubectl.run(*args, "-n", self.namespace, timeout=300)

    def http_target(self, service: str) -> tuple[str, int, str]:
        if self._proxy is None or self._proxy.poll() is not None:
            self._proxy_port = _free_port()
            self._proxy = subprocess.Popen(
                [self.cluster.kubectl.binary, "proxy", f"--port={self._proxy_port}", "--address=127.0.0.1"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=self.cluster.kubectl.env,
            )
            assert self._proxy.stdout is not None
            line = self._proxy.stdout.readline()
            if not re.search(r"Starting to serve on", line):
                raise AssertionError(f"kubectl proxy did not start: {line}")
        return (
            "127.0.0.1",
            self._proxy_port,
            f"/api/v1/namespaces/{self.namespace}/services/{service}:http/proxy",
        )

    def grpc_target(self, service: str) -> str:
        if self._forward is not None:  # the pod it forwarded to may be gone after a rollout
            self._forward.close()
        self._forward = contextlib.ExitStack()
        ports = self._forward.enter_context(
            port_forward(self.cluster.kubectl, self.namespace, f"svc/{service}", [8081])
        )
        return f"127.0.0.1:{ports[8081]}"

    def restart_operator(self) -> None:
        selector = f"app.kubernetes.io/instance={self.release},app.kubernetes.io/component=operator"
        self.kubectl("delete", "pod", "-l", selector, "--grace-period=0", "--force", "--wait=false")
        time.sleep(2)
        wait_for("the operator to be back", lambda: operator_available(self.cluster), 300)

    def running(self) -> list[str]:
        return [
            p["metadata"]["name"]
            for p in self.objects("v1", "Pod")
            if (p["metadata"].get("labels") or {}).get(MD_LABEL) == self.model_name
        ]

    def check(self) -> None:
        return None

    def diagnose(self) -> str:
        return self.cluster.diagnose(self.model_name)

    def close(self) -> None:
        if self._forward is not None:
            self._forward.close()
        if self._proxy is not None:
            self._proxy.terminate()
            self._proxy.wait(10)
        self.cluster.kubectl.run(
            "delete",
            "md",
            self.model_name,
            "-n",
            self.namespace,
            "--ignore-not-found",
            "--wait=true",
            check=False,
            timeout=330,
        )
