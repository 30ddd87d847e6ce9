"""What the job controller, the deployment/replicaset controllers and the kubelet would write,
run on the emulator's loop by the `Kube` helpers: pods with statuses, Job conditions, rollout status."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any

from kube_emulator.emulator import Emulator, now_rfc3339
from kube_emulator.patch import MERGE_PATCH
from kube_emulator.resources import ResourceType

_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _suffix() -> str:
    return "".join(random.choices(_CHARS, k=5))


def _owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _rt(emu: Emulator, api_version: str, kind: str) -> ResourceType:
    return emu.rtype_for(api_version, kind)


def _write_status(
    emu: Emulator, rtype: ResourceType, obj: dict[str, Any], status: dict[str, Any]
) -> dict[str, Any]:
    body = copy.deepcopy(obj)
    body["status"] = status
    meta = obj["metadata"]
    return emu.replace(rtype, meta.get("namespace"), meta["name"], body, subresource="status")


def _make_pod(
    emu: Emulator,
    owner: dict[str, Any],
    template: dict[str, Any],
    name: str,
    extra_labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    tmeta = template.get("metadata") or {}
    labels = {**(tmeta.get("labels") or {}), **(extra_labels or {})}
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
            "annotations": {**(tmeta.get("annotations") or {}), **(annotations or {})},
            "ownerReferences": [_owner_ref(owner)],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    pod["spec"]["nodeName"] = "kube-emulator-node"
    return emu.create(_rt(emu, "v1", "Pod"), owner["metadata"]["namespace"], pod)


def _container_status(container: dict[str, Any], state: dict[str, Any], ready: bool) -> dict[str, Any]:
    return {
        "name": container.get("name"),
        "image": container.get("image"),
        "imageID": f"docker.io/library/{container.get('image')}@sha256:{'0' * 64}",
        "containerID": f"containerd://{hashlib.sha256(json.dumps(state).encode()).hexdigest()}",
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def _job_pods(emu: Emulator, job: dict[str, Any]) -> list[dict[str, Any]]:
    uid = job["metadata"]["uid"]
    pods = emu.list(_rt(emu, "v1", "Pod"), job["metadata"]["namespace"])["items"]
    return [p for p in pods if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]


def _job_indexes(job: dict[str, Any]) -> list[int | None]:
    spec = job.get("spec") or {}
    if spec.get("completionMode") == "Indexed":
        return list(range(int(spec.get("completions") or 1)))
    return [None]


def _ensure_job_pods(emu: Emulator, job: dict[str, Any]) -> list[dict[str, Any]]:
    existing = _job_pods(emu, job)
    if existing:
        return existing
    template = job["spec"].get("template") or {}
    pods = []
    for index in _job_indexes(job):
        name = job["metadata"]["name"]
        ann, labels = {}, {}
        if index is not None:
            ann = {"batch.kubernetes.io/job-completion-index": str(index)}
            labels = {"batch.kubernetes.io/job-completion-index": str(index)}
            pod_name = f"{name}-{index}-{_suffix()}"
        else:
            pod_name = f"{name}-{_suffix()}"
        pods.append(_make_pod(emu, job, template, pod_name, labels, ann))
    return pods


def start_job(emu: Emulator, namespace: str, name: str) -> dict[str, Any]:
    rtype = _rt(emu, "batch/v1", "Job")
    job = emu.get(rtype, namespace, name)
    pods = _ensure_job_pods(emu, job)
    pod_rt = _rt(emu, "v1", "Pod")
    ts = now_rfc3339()
    for pod in pods:
        containers = pod["spec"].get("containers") or []
        _write_status(
            emu,
            pod_rt,
            pod,
            {
                "phase": "Running",
                "startTime": ts,
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "hostIP": "127.0.0.1",
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": ts}
                    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                ],
                "containerStatuses": [
                    _container_status(c, {"running": {"startedAt": ts}}, True) for c in containers
                ],
            },
        )
    job = emu.get(rtype, namespace, name)
    status = {
        **(job.get("status") or {}),
        "startTime": (job.get("status") or {}).get("startTime") or ts,
        "active": len(pods),
        "ready": len(pods),
        "terminating": 0,
        "uncountedTerminatedPods": {},
    }
    return copy.deepcopy(_write_status(emu, rtype, job, status))


def _pick(value: Any, i: int) -> Any:
    if isinstance(value, list | tuple):
        return value[i] if i < len(value) else None
    return value


def complete_job(
    emu: Emulator,
    namespace: str,
    name: str,
    succeeded: bool,
    termination_message: Any,
    log: Any,
    reason: str | None,
    message: str | None,
    exit_code: int | None,
) -> dict[str, Any]:
    rtype = _rt(emu, "batch/v1", "Job")
    job = emu.get(rtype, namespace, name)
    pods = sorted(_ensure_job_pods(emu, job), key=lambda p: p["metadata"]["name"])
    pods.sort(
        key=lambda p: int(
            p["metadata"].get("annotations", {}).get("batch.kubernetes.io/job-completion-index", 0)
        )
    )
    pod_rt = _rt(emu, "v1", "Pod")
    ts = now_rfc3339()
    start = (job.get("status") or {}).get("startTime") or ts
    code = exit_code if exit_code is not None else (0 if succeeded else 1)
    for i, pod in enumerate(pods):
        msg = _pick(termination_message, i)
        if isinstance(msg, dict):
            msg = json.dumps(msg)
        text = _pick(log, i)
        containers = pod["spec"].get("containers") or []
        if text is not None and containers:
            emu.logs[(namespace, pod["metadata"]["name"], containers[0].get("name", ""))] = text
        statuses = []
        for j, c in enumerate(containers):
            term: dict[str, Any] = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": start,
                "finishedAt": ts,
            }
            if j == 0 and msg is not None:
                term["message"] = msg
            statuses.append(_container_status(c, {"terminated": term}, False))
        _write_status(
            emu,
            pod_rt,
            pod,
            {
                "phase": "Succeeded" if succeeded else "Failed",
                "startTime": start,
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "hostIP": "127.0.0.1",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": start},
                    {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": ts},
                ],
                "containerStatuses": statuses,
            },
        )
    job = emu.get(rtype, namespace, name)
    status: dict[str, Any] = {
        "startTime": start,
        "active": 0,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    }
    if succeeded:
        status.update(
            succeeded=len(pods),
            completionTime=ts,
            conditions=[
                {
                    "type": "SuccessCriteriaMet",
                    "status": "True",
                    "reason": reason or "CompletionsReached",
                    "message": message or "Reached expected number of succeeded pods",
                    "lastProbeTime": ts,
                    "lastTransitionTime": ts,
                },
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": reason or "CompletionsReached",
                    "message": message or "Reached expected number of succeeded pods",
                    "lastProbeTime": ts,
                    "lastTransitionTime": ts,
                },
            ],
        )
        if len(pods) > 1:
            status["completedIndexes"] = f"0-{len(pods) - 1}"
    else:
        why = reason or "BackoffLimitExceeded"
        text = message or "Job has reached the specified backoff limit"
        status.update(
            failed=len(pods),
            conditions=[
                {
                    "type": "FailureTarget",
                    "status": "True",
                    "reason": why,
                    "message": text,
                    "lastProbeTime": ts,
                    "lastTransitionTime": ts,
                },
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": why,
                    "message": text,
                    "lastProbeTime": ts,
                    "lastTransitionTime": ts,
                },
            ],
        )
    return copy.deepcopy(_write_status(emu, rtype, job, status))


def _template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(_CHARS[int(digest[i : i + 2], 16) % len(_CHARS)] for i in range(0, 20, 2))


def deployment_ready(
    emu: Emulator,
    namespace: str,
    name: str,
    ready: int | None,
    pod_ip: str | Sequence[str],
    container_port: int | Sequence[int] | None,
) -> dict[str, Any]:
    drt, rsrt, pod_rt = (
        _rt(emu, "apps/v1", "Deployment"),
        _rt(emu, "apps/v1", "ReplicaSet"),
        _rt(emu, "v1", "Pod"),
    )
    dep = emu.get(drt, namespace, name)
    spec = dep.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    ready = replicas if ready is None else min(int(ready), replicas)
    template = copy.deepcopy(spec.get("template") or {})
    phash = _template_hash(template)
    rs_name = f"{name}-{phash}"
    uid = dep["metadata"]["uid"]
    owned = [
        rs
        for rs in emu.list(rsrt, namespace)["items"]
        if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])
    ]
    for rs in owned:  # the rollout is over: old ReplicaSets scaled to 0, their pods gone
        if rs["metadata"]["name"] != rs_name:
            for pod in _owned_pods(emu, rs):
                emu.delete(pod_rt, namespace, pod["metadata"]["name"])
            if (rs.get("spec") or {}).get("replicas"):
                emu.patch(rsrt, namespace, rs["metadata"]["name"], MERGE_PATCH, {"spec": {"replicas": 0}})
                fresh = emu.get(rsrt, namespace, rs["metadata"]["name"])
                _write_status(
                    emu, rsrt, fresh, {"replicas": 0, "observedGeneration": fresh["metadata"]["generation"]}
                )
    labels = {**((template.get("metadata") or {}).get("labels") or {}), "pod-template-hash": phash}
    template.setdefault("metadata", {})["labels"] = labels
    rs = emu.store.get(rsrt.store_key, (namespace, rs_name))
    if rs is None:
        sel = copy.deepcopy(spec.get("selector") or {})
        sel.setdefault("matchLabels", {})["pod-template-hash"] = phash
        rs = emu.create(
            rsrt,
            namespace,
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {"deployment.kubernetes.io/revision": str(len(owned) + 1)},
                    "ownerReferences": [_owner_ref(dep)],
                },
                "spec": {"replicas": replicas, "selector": sel, "template": template},
            },
        )
    elif (rs.get("spec") or {}).get("replicas") != replicas:
        rs = emu.patch(rsrt, namespace, rs_name, MERGE_PATCH, {"spec": {"replicas": replicas}})
    pods = sorted(
        _owned_pods(emu, rs), key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"]
    )
    for pod in pods[replicas:]:
        emu.delete(pod_rt, namespace, pod["metadata"]["name"])
    pods = pods[:replicas]
    while len(pods) < replicas:
        pods.append(_make_pod(emu, rs, template, f"{rs_name}-{_suffix()}"))
    ts = now_rfc3339()
    for i, pod in enumerate(pods):
        ip = _pick(pod_ip, i) or "127.0.0.1"
        port = _pick(container_port, i)
        if port is not None:
            containers = copy.deepcopy(pod["spec"].get("containers") or [])
            if containers:
                ports = containers[0].get("ports") or [{"name": "http", "protocol": "TCP"}]
                ports[0]["containerPort"] = int(port)
                containers[0]["ports"] = ports
                body = copy.deepcopy(pod)
                body["spec"]["containers"] = containers
                pod = emu.replace(pod_rt, namespace, pod["metadata"]["name"], body)
        is_ready = i < ready
        flag = "True" if is_ready else "False"
        state = {"running": {"startedAt": ts}}
        _write_status(
            emu,
            pod_rt,
            pod,
            {
                "phase": "Running",
                "startTime": ts,
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "hostIP": "127.0.0.1",
                "qosClass": "BestEffort",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": ts},
                    {"type": "ContainersReady", "status": flag, "lastTransitionTime": ts},
                    {"type": "Ready", "status": flag, "lastTransitionTime": ts},
                ],
                "containerStatuses": [
                    _container_status(c, state, is_ready) for c in pod["spec"].get("containers") or []
                ],
            },
        )
    rs = emu.get(rsrt, namespace, rs_name)
    _write_status(
        emu,
        rsrt,
        rs,
        {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"],
        },
    )
    dep = emu.get(drt, namespace, name)
    complete = ready >= replicas
    old_conds = {c.get("type"): c for c in (dep.get("status") or {}).get("conditions") or []}

    def cond(ctype: str, status: str, why: str, text: str) -> dict[str, Any]:
        prev = old_conds.get(ctype) or {}
        moved = prev.get("status") != status
        return {
            "type": ctype,
            "status": status,
            "reason": why,
            "message": text,
            "lastUpdateTime": ts,
            "lastTransitionTime": ts if moved else prev.get("lastTransitionTime", ts),
        }

    status = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [
            cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if complete or (ready > 0 and replicas - ready <= _max_unavailable(spec, replicas))
            else cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            ),
            cond(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
            if complete
            else cond("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'),
        ],
    }
    if replicas - ready:
        status["unavailableReplicas"] = replicas - ready
    if not ready:
        status.pop("readyReplicas")
        status.pop("availableReplicas")
    return copy.deepcopy(_write_status(emu, drt, dep, status))


def _max_unavailable(spec: dict[str, Any], replicas: int) -> int:
    value = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return int(replicas * int(value[:-1]) / 100)
    return int(value)


def _owned_pods(emu: Emulator, owner: dict[str, Any]) -> list[dict[str, Any]]:
    uid = owner["metadata"]["uid"]
    return [
        p
        for p in emu.list(_rt(emu, "v1", "Pod"), owner["metadata"]["namespace"])["items"]
        if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
    ]


def deployment_failed(emu: Emulator, namespace: str, name: str, message: str | None) -> dict[str, Any]:
    drt = _rt(emu, "apps/v1", "Deployment")
    dep = emu.get(drt, namespace, name)
    ts = now_rfc3339()
    status = copy.deepcopy(dep.get("status") or {})
    status["observedGeneration"] = dep["metadata"]["generation"]
    rs_name = f"{name}-{_template_hash((dep.get('spec') or {}).get('template') or {})}"
    conds = [c for c in status.get("conditions") or [] if c.get("type") != "Progressing"]
    conds.append(
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": message or f'ReplicaSet "{rs_name}" has timed out progressing.',
            "lastUpdateTime": ts,
            "lastTransitionTime": ts,
        }
    )
    if not any(c.get("type") == "Available" for c in conds):
        conds.insert(
            0,
            {
                "type": "Available",
                "status": "False",
                "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability.",
                "lastUpdateTime": ts,
                "lastTransitionTime": ts,
            },
        )
    status["conditions"] = conds
    return copy.deepcopy(_write_status(emu, drt, dep, status))
