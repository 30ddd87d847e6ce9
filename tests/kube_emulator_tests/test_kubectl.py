"""The real kubectl (v1.35, .tools/bin/kubectl) against the emulator: discovery, get with server-side
tables and printer columns, apply --validate=false (create and update), scale, logs, delete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kube_emulator.helpers import KUBECTL, REPO, Kube

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason=f"kubectl not installed at {KUBECTL}")

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: example/web:1
        env: [{name: A, value: "1"}]
        ports: [{containerPort: 8080}]
"""


def test_get_modeldeployments_shows_printer_columns(kube: Kube) -> None:
    kube.apply_file(REPO / "examples" / "digits.yaml", "default")
    kube.set_status(
        "trtforge.dev/v1alpha1",
        "ModelDeployment",
        "digits",
        {
            "phase": "Ready",
            "model": {"accuracy": 0.97},
            "engine": {"precision": "fp16"},
            "serving": {"readyReplicas": 2, "url": "http://digits.default.svc:8080"},
        },
        "default",
    )
    out = kube.kubectl("get", "md").stdout.splitlines()
    assert out[0].split() == ["NAME", "PHASE", "REASON", "ACCURACY", "ENGINE", "READY", "URL", "AGE"]
    reason_at = out[0].index("REASON")
    assert out[1][reason_at:].split()[0] == "0.97"  # an object that has not failed shows no reason
    assert out[1].split()[:6] == ["digits", "Ready", "0.97", "fp16", "2", "http://digits.default.svc:8080"]
    assert (
        kube.kubectl(
            "get", "modeldeployments.trtforge.dev", "digits", "-o", "jsonpath={.status.phase}"
        ).stdout
        == "Ready"
    )


def test_get_modeldeployments_says_why_an_object_failed(kube: Kube) -> None:
    kube.apply_file(REPO / "examples" / "digits.yaml", "default")
    kube.set_status(
        "trtforge.dev/v1alpha1",
        "ModelDeployment",
        "digits",
        {"phase": "Failed", "reason": "QualityGateFailed", "message": "test accuracy 0.41 < minAccuracy 0.9"},
        "default",
    )
    out = kube.kubectl("get", "md").stdout.splitlines()
    assert out[1].split()[:3] == ["digits", "Failed", "QualityGateFailed"]
    wide = kube.kubectl("get", "md", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-1] == "MESSAGE"
    assert wide[1].endswith("test accuracy 0.41 < minAccuracy 0.9")


def test_apply_create_then_update_a_deployment(kube: Kube) -> None:
    kube.kubectl("apply", "--validate=false", "-f", "-", input=DEPLOYMENT)
    dep = kube.get("apps/v1", "Deployment", "web", "default")
    assert dep is not None and dep["spec"]["replicas"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]
    changed = DEPLOYMENT.replace("example/web:1", "example/web:2").replace('value: "1"', 'value: "2"')
    out = kube.kubectl("apply", "--validate=false", "-f", "-", input=changed).stdout
    assert "configured" in out
    dep = kube.get("apps/v1", "Deployment", "web", "default")
    assert dep is not None
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example/web:2" and container["env"] == [{"name": "A", "value": "2"}]
    assert dep["metadata"]["generation"] == 2
    assert "unchanged" in kube.kubectl("apply", "--validate=false", "-f", "-", input=changed).stdout


def test_apply_a_custom_resource_twice(kube: Kube) -> None:
    path = str(REPO / "examples" / "digits.yaml")
    assert "created" in kube.kubectl("apply", "--validate=false", "-f", path).stdout
    body = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    body["spec"]["serving"]["replicas"] = 2
    out = kube.kubectl("apply", "--validate=false", "-f", "-", input=yaml.safe_dump(body)).stdout
    assert "configured" in out
    md = kube.get("trtforge.dev/v1alpha1", "ModelDeployment", "digits", "default")
    assert md is not None and md["spec"]["serving"]["replicas"] == 2 and md["metadata"]["generation"] == 2


def test_apply_an_invalid_custom_resource_is_refused(kube: Kube) -> None:
    body = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    body["spec"]["engine"]["precision"] = "fp64"
    proc = kube.kubectl("apply", "--validate=false", "-f", "-", input=yaml.safe_dump(body), check=False)
    assert proc.returncode != 0
    assert 'spec.engine.precision: Unsupported value: "fp64"' in proc.stderr


def test_scale_custom_resource_and_deployment(kube: Kube) -> None:
    kube.apply_file(REPO / "examples" / "digits.yaml", "default")
    kube.kubectl("scale", "md/digits", "--replicas=3")
    md = kube.get("trtforge.dev/v1alpha1", "ModelDeployment", "digits", "default")
    assert md is not None and md["spec"]["serving"]["replicas"] == 3
    kube.kubectl("apply", "--validate=false", "-f", "-", input=DEPLOYMENT)
    kube.kubectl("scale", "deployment/web", "--replicas=4")
    dep = kube.get("apps/v1", "Deployment", "web", "default")
    assert dep is not None and dep["spec"]["replicas"] == 4


def test_get_pods_jobs_deployments_and_logs(kube: Kube) -> None:
    kube.kubectl("apply", "--validate=false", "-f", "-", input=DEPLOYMENT)
    kube.make_deployment_ready("default", "web")
    out = kube.kubectl("get", "deployments").stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out[1].split()[:4] == ["web", "2/2", "2", "2"]
    pods = kube.kubectl("get", "pods", "-l", "app=web", "-o", "wide").stdout.splitlines()
    assert len(pods) == 3 and pods[1].split()[1:3] == ["1/1", "Running"] and "127.0.0.1" in pods[1]
    kube.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "train"},
            "spec": {
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}
            },
        }
    )
    kube.complete_job("default", "train", log="epoch 1\nepoch 2\n")
    jobs = kube.kubectl("get", "jobs").stdout.splitlines()
    assert jobs[1].split()[:3] == ["train", "Complete", "1/1"]
    assert kube.kubectl("logs", "job/train").stdout == "epoch 1\nepoch 2\n"
    listed = json.loads(kube.kubectl("get", "pods", "-o", "json").stdout)
    assert listed["kind"] == "List" and len(listed["items"]) == 3


def test_delete_waits_for_the_object_to_go(kube: Kube) -> None:
    kube.kubectl("apply", "--validate=false", "-f", "-", input=DEPLOYMENT)
    kube.make_deployment_ready("default", "web")
    out = kube.kubectl("delete", "deployment", "web", "--timeout=10s").stdout
    assert 'deployment.apps "web" deleted' in out
    assert kube.pods("default", "app=web") == []  # garbage-collected through the ReplicaSet
    assert kube.list("apps/v1", "ReplicaSet", "default") == []


def test_plain_apply_uses_strict_server_side_field_validation(kube: Kube) -> None:
    assert "created" in kube.kubectl("apply", "-f", str(REPO / "examples" / "digits.yaml")).stdout
    body = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    body["metadata"]["name"] = "typo"
    body["spec"]["serving"]["replicaz"] = 2
    proc = kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(body), check=False)
    assert (
        proc.returncode != 0 and 'strict decoding error: unknown field "spec.serving.replicaz"' in proc.stderr
    )
    proc = kube.kubectl("apply", "--validate=warn", "-f", "-", input=yaml.safe_dump(body))
    assert 'Warning: unknown field "spec.serving.replicaz"' in proc.stderr
    md = kube.get("trtforge.dev/v1alpha1", "ModelDeployment", "typo", "default")
    assert md is not None and "replicaz" not in md["spec"]["serving"]


def test_explain_reads_the_crd_schema(kube: Kube) -> None:
    out = kube.kubectl("explain", "md.spec.engine").stdout
    assert "KIND:       ModelDeployment" in out and "computeCapabilities" in out


def test_get_watch_streams_table_rows(kube: Kube) -> None:
    import os
    import subprocess
    import threading

    kube.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    proc = subprocess.Popen(
        [str(KUBECTL), "get", "deployments", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        kube.wait_for(
            lambda: kube.emulator.store.watches.get(("apps", "deployments")), 10, message="kubectl to watch"
        )
        kube.make_deployment_ready("default", "web")
        kube.wait_for(lambda: any("2/2" in line for line in lines), 10, message="the 2/2 row")
    finally:
        proc.terminate()
        proc.wait(10)
    rows = [line.split()[:2] for line in lines[1:]]
    assert rows[0] == ["web", "0/2"] and rows[-1] == ["web", "2/2"]


def test_standalone_emulator_process(tmp_path: Path) -> None:
    """`python -m kube_emulator` serves until terminated, with a kubeconfig kubectl can use."""
    import os
    import signal
    import subprocess
    import sys

    kubeconfig = tmp_path / "kubeconfig"
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kube_emulator", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Kubernetes API emulator on http://127.0.0.1:" in line
        out = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(kubeconfig), "get", "crd", "-o", "name"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert "customresourcedefinition.apiextensions.k8s.io/modeldeployments.trtforge.dev" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_server_side_apply_creates_and_updates(kube: Kube) -> None:
    out = kube.kubectl("apply", "--server-side", "-f", "-", input=DEPLOYMENT).stdout
    assert "serverside-applied" in out
    changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3")
    kube.kubectl("apply", "--server-side", "-f", "-", input=changed)
    dep = kube.get("apps/v1", "Deployment", "web", "default")
    assert dep is not None and dep["spec"]["replicas"] == 3 and dep["metadata"]["generation"] == 2
    kube.kubectl("apply", "--server-side", "-f", str(REPO / "examples" / "digits.yaml"))
    assert kube.get("trtforge.dev/v1alpha1", "ModelDeployment", "digits", "default") is not None


def test_keda_scaledobject_printer_columns(kube: Kube) -> None:
    kube.install_keda_crd()
    kube.create(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "so"},
            "spec": {
                "scaleTargetRef": {"name": "srv"},
                "minReplicaCount": 1,
                "maxReplicaCount": 4,
                "triggers": [{"type": "prometheus", "metadata": {"threshold": "8"}}],
            },
        }
    )
    kube.set_status(
        "keda.sh/v1alpha1",
        "ScaledObject",
        "so",
        {"conditions": [{"type": "Ready", "status": "True"}]},
        "default",
    )
    lines = kube.kubectl("get", "so").stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "SCALETARGETKIND",
        "SCALETARGETNAME",
        "MIN",
        "MAX",
        "READY",
        "ACTIVE",
        "AGE",
    ]
    assert lines[1].split()[:5] == ["so", "srv", "1", "4", "True"]
