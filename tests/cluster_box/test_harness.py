"""The cluster in a box itself: images from the Dockerfiles, container paths, rollout arithmetic, and Jobs
that run for real (a missing claim leaves the pod Pending; a wrong mount path fails the Job)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_box.api import Api
from cluster_box.box import ClusterBox
from cluster_box.containers import ContainerConfigError, expand, spec_env, termination_message
from cluster_box.deployments import surge_and_unavailable
from cluster_box.images import IMAGE_VENV, ImagePullError, Images, image_name
from cluster_box.volumes import PathMap
from kube_emulator.fixtures import start_kube
from kube_emulator.helpers import Kube

NS = "box"


def test_images_come_from_the_dockerfiles() -> None:
    images = Images()
    for name in ("trainer", "converter", "server"):
        image = images.resolve(f"ghcr.io/trtforge/{name}:0.1.0")
        assert image.entrypoint == ["trtforge"]
        assert image.env["PATH"].startswith(f"{IMAGE_VENV}/bin:")
        assert image.env["HOME"] == "/tmp"
        assert image.user == "10001:10001"
    assert image_name("registry:5000/a/b/server@sha256:abc") == "server"
    with pytest.raises(ImagePullError, match=r"no docker/busybox\.Dockerfile"):
        images.resolve("busybox:1.36")


def test_paths_are_rewritten_at_path_boundaries_only() -> None:
    paths = PathMap()
    paths.add("/artifacts", "/host/a")
    paths.add("/etc/trtforge", "/host/cfg")
    assert paths.rewrite("/artifacts/ml/x") == "/host/a/ml/x"
    assert paths.rewrite("--out=/artifacts") == "--out=/host/a"
    assert paths.rewrite("/opt/bin:/artifacts/bin") == "/opt/bin:/host/a/bin"
    for untouched in ("/artifacts2/x", "pvc://trtforge-artifacts/x", "/etc/trtforgex", "/x/artifacts"):
        assert paths.rewrite(untouched) == untouched
    assert paths.host("/etc/trtforge/modeldeployment.yaml") == "/host/cfg/modeldeployment.yaml"
    assert paths.host("/etc/trtforg/modeldeployment.yaml") is None


def test_folders_above_mount_points_hold_the_mounts(tmp_path: Path) -> None:
    """TRTFORGE_PVC_ROOT=/mnt/pvc above the claims mounted at /mnt/pvc/CLAIM (the operator's contract)."""
    models, data = tmp_path / "claims" / "models", tmp_path / "claims" / "data"
    models.mkdir(parents=True)
    data.mkdir(parents=True)
    (models / "m.onnx").write_bytes(b"onnx")
    paths = PathMap()
    paths.add("/mnt/pvc/models", models)
    paths.add("/mnt/pvc/data", data)
    paths.add("/etc/trtforge", tmp_path / "cfg")
    paths.add_parents(tmp_path / "parents")
    root = Path(paths.rewrite("/mnt/pvc"))
    assert root == tmp_path / "parents" / "mnt" / "pvc"
    assert (root / "models" / "m.onnx").read_bytes() == b"onnx"
    assert sorted(p.name for p in root.iterdir()) == ["data", "models"]
    assert paths.rewrite("TRTFORGE_PVC_ROOT=/mnt/pvc") == f"TRTFORGE_PVC_ROOT={root}"
    assert paths.rewrite("/mnt/pvc/models/m.onnx") == f"{models}/m.onnx"
    # only the parent itself: nothing else exists there, and /etc/ssl stays the host's
    for untouched in ("/mnt/pvc/other", "/etc/ssl/certs", "/mnt/pvcx"):
        assert paths.rewrite(untouched) == untouched


def test_environment_resolves_like_the_kubelet(tmp_path: Path) -> None:
    thread, kube = start_kube(tmp_path)
    try:
        kube.create_namespace(NS)
        meta = {"namespace": NS}
        kube.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", **meta}, "data": {"A": "1"}}
        )
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", **meta},
            "data": {"K": "c2Vj"},
        }
        kube.create(secret)
        pod = {
            "metadata": {"name": "p", "namespace": NS, "uid": "u", "labels": {"app": "x"}},
            "spec": {"nodeName": "n"},
            "status": {"podIP": "127.42.7.9"},
        }
        container = {
            "name": "c",
            "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}},
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}, {"secretRef": {"name": "s"}}],
            "env": [
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {
                    "name": "MEM",
                    "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
                },
                {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "K"}}},
                {
                    "name": "OPT",
                    "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "B", "optional": True}},
                },
                {"name": "URL", "value": "http://$(IP):8080/$(CM_A)"},
            ],
        }
        env = kube.call(lambda emu: spec_env(Api(emu), pod, container))
        assert env == {
            "CM_A": "1",
            "K": "sec",
            "IP": "127.42.7.9",
            "APP": "x",
            "CPU": "2",
            "MEM": "1024",
            "KEY": "sec",
            "URL": "http://127.42.7.9:8080/1",
        }
        missing = {
            "name": "c",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}],
        }
        with pytest.raises(ContainerConfigError, match="couldn't find key nope in Secret box/s"):
            kube.call(lambda emu: spec_env(Api(emu), pod, missing))
    finally:
        thread.stop()


def test_dollar_expansion_follows_kubernetes() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-two-$(C)-$(A)"


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [(1, 0, 3, (1, 0)), ("25%", "25%", 3, (1, 0)), ("25%", "25%", 8, (2, 2)), (0, 0, 3, (0, 1))],
)
def test_rolling_update_bounds(
    surge: Any, unavailable: Any, replicas: int, expected: tuple[int, int]
) -> None:
    spec = {"strategy": {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}
    assert surge_and_unavailable(spec, replicas) == expected


def test_termination_message_falls_back_to_the_log_tail(tmp_path: Path) -> None:
    msg, log = tmp_path / "msg", tmp_path / "log"
    msg.write_text("")
    log.write_text("".join(f"line {i}\n" for i in range(200)))
    assert termination_message(msg, log, "File", 1) is None
    tail = termination_message(msg, log, "FallbackToLogsOnError", 1)
    assert tail is not None and tail.endswith("line 199") and len(tail.splitlines()) <= 80
    assert termination_message(msg, log, "FallbackToLogsOnError", 0) is None
    msg.write_text('{"ok": true}')
    assert termination_message(msg, log, "FallbackToLogsOnError", 1) == '{"ok": true}'


# ---------------------------------------------------------------------- Jobs run for real


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Kube, ClusterBox]]:
    thread, kube = start_kube(tmp_path)
    kube.create_namespace(NS)
    box = ClusterBox(kube, tmp_path / "box").start()
    try:
        yield kube, box
    finally:
        box.stop()
        thread.stop()


def _job(args: list[str], config_mount: str = "/etc/trtforge") -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "ghcr.io/trtforge/trainer:0.1.0",
        "command": ["trtforge"],
        "args": args,
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "OUT", "value": "/artifacts/$(POD)"},
        ],
        "volumeMounts": [
            {"name": "cfg", "mountPath": config_mount, "readOnly": True},
            {"name": "data", "mountPath": "/artifacts"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "probe", "namespace": NS},
        "spec": {
            "backoffLimit": 3,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "main", "operator": "In", "values": [2]},
                    }
                ]
            },
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [
                        {"name": "cfg", "configMap": {"name": "cfg"}},
                        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    ],
                }
            },
        },
    }


def _job_condition(kube: Kube) -> dict[str, Any] | None:
    job = kube.get("batch/v1", "Job", "probe", NS) or {}
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return dict(cond)
    return None


def test_a_missing_claim_leaves_the_pod_pending_until_it_exists(box: tuple[Kube, ClusterBox]) -> None:
    kube, cbox = box
    kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": NS}, "data": {}}
    )
    kube.create(_job(["--version"]))

    def unschedulable() -> Any:
        for pod in kube.pods(NS):
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    return cond
        return None

    cond = cbox.wait_for(unschedulable, 20, "the pod to be Unschedulable")
    assert 'persistentvolumeclaim "data" not found' in cond["message"]
    assert _job_condition(kube) is None
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kube.create(claim)
    done = cbox.wait_for(lambda: _job_condition(kube), 60, "the Job to finish")
    assert done["type"] == "Complete", done
    pod = kube.pods(NS)[0]
    assert pod["status"]["phase"] == "Succeeded"
    assert kube.get("v1", "PersistentVolumeClaim", "data", NS)["status"]["phase"] == "Bound"


def test_a_wrong_mount_path_fails_the_job_with_the_programs_message(box: tuple[Kube, ClusterBox]) -> None:
    kube, cbox = box
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": NS},
            "data": {"modeldeployment.yaml": "not: a manifest\n"},
        }
    )
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": NS},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    # the manifest is mounted at /etc/trtforge-config but the arguments read /etc/trtforge/...
    job = _job(["train", "-f", "/etc/trtforge/modeldeployment.yaml", "-o", "$(OUT)"], "/etc/trtforge-config")
    kube.create(copy.deepcopy(job))
    done = cbox.wait_for(lambda: _job_condition(kube), 60, "the Job to finish")
    assert done["type"] == "Failed" and done["reason"] == "PodFailurePolicy", done
    assert "failed with exit code 2 matching FailJob rule at index 0" in done["message"]
    pods = kube.pods(NS)
    assert len(pods) == 1  # FailJob: no retry despite backoffLimit 3
    term = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 2
    assert "/etc/trtforge/modeldeployment.yaml" in term["message"]  # the log tail names the missing file
    assert not cbox.errors
