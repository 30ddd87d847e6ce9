"""The deployment and replicaset controllers: rolling updates that honour maxSurge and maxUnavailable.

As in Kubernetes (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment):
one ReplicaSet per pod template (named `<deployment>-<template hash>`, pods labelled
`pod-template-hash`); the new ReplicaSet grows while the total stays within replicas + maxSurge, old ones
shrink while the available pods stay at or above replicas - maxUnavailable (maxSurge rounds up,
maxUnavailable down; both 0 means maxUnavailable 1). A ReplicaSet with too many pods deletes the
not-ready ones first, then the newest. The Deployment's status (observedGeneration, replicas,
updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas, Available and Progressing
conditions, ProgressDeadlineExceeded after `progressDeadlineSeconds` without progress) is what
`kubectl rollout status` reads. ReplicaSets beyond `revisionHistoryLimit` are deleted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from typing import Any

from cluster_box.api import Api, owned_by, owner_ref
from cluster_box.jobs import _ready
from kube_emulator.emulator import now_rfc3339

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(_CHARS[int(digest[i : i + 2], 16) % len(_CHARS)] for i in range(0, 20, 2))


def _scaled(value: Any, replicas: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = replicas * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def surge_and_unavailable(spec: dict[str, Any], replicas: int) -> tuple[int, int]:
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


class DeploymentController:
    def __init__(self) -> None:
        self.progress: dict[str, tuple[Any, float]] = {}  # deployment uid -> (progress signature, since)

    def sync(self, api: Api) -> None:
        pods = [p for p in api.list("v1", "Pod") if not p["metadata"].get("deletionTimestamp")]
        rsets = api.list("apps/v1", "ReplicaSet")
        for dep in api.list("apps/v1", "Deployment"):
            if not dep["metadata"].get("deletionTimestamp"):
                self._sync_deployment(api, dep, [rs for rs in rsets if owned_by(rs, dep)], pods)
        for rs in api.list("apps/v1", "ReplicaSet"):
            if not rs["metadata"].get("deletionTimestamp"):
                self._sync_replicaset(api, rs, [p for p in pods if owned_by(p, rs)])

    # ------------------------------------------------------------------ deployment
    def _sync_deployment(
        self, api: Api, dep: dict[str, Any], rsets: list[dict[str, Any]], pods: list[dict[str, Any]]
    ) -> None:
        spec = dep["spec"]
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        name = f"{dep['metadata']['name']}-{template_hash(template)}"
        new = next((rs for rs in rsets if rs["metadata"]["name"] == name), None)
        old = sorted(
            (rs for rs in rsets if rs is not new),
            key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, 0)),
        )
        if new is None:
            revision = 1 + max(
                (int(rs["metadata"].get("annotations", {}).get(REVISION, 0)) for rs in rsets), default=0
            )
            new = api.create(self._replicaset(dep, template, revision, 0))
        surge, unavailable = surge_and_unavailable(spec, replicas)

        def ready_of(rs: dict[str, Any]) -> int:
            return sum(1 for p in pods if owned_by(p, rs) and _ready(p))

        counts = {rs["metadata"]["uid"]: int(rs["spec"].get("replicas") or 0) for rs in [new, *old]}
        new_uid = new["metadata"]["uid"]
        if not any(counts[rs["metadata"]["uid"]] for rs in old):
            counts[new_uid] = replicas
        else:
            total = sum(counts.values())
            if counts[new_uid] < replicas:
                counts[new_uid] += max(0, min(replicas + surge - total, replicas - counts[new_uid]))
            elif counts[new_uid] > replicas:
                counts[new_uid] = replicas
            available = sum(ready_of(rs) for rs in [new, *old])
            new_unavailable = max(0, counts[new_uid] - ready_of(new))
            # first old pods that are not available anyway, then as many as availability allows
            budget = sum(counts.values()) - (replicas - unavailable) - new_unavailable
            for rs in old:
                uid = rs["metadata"]["uid"]
                unhealthy = max(0, counts[uid] - ready_of(rs))
                cut = min(unhealthy, max(0, budget))
                counts[uid] -= cut
                budget -= cut
            room = available - (replicas - unavailable)
            for rs in old:
                uid = rs["metadata"]["uid"]
                cut = min(counts[uid], max(0, room), max(0, budget))
                counts[uid] -= cut
                room -= cut
                budget -= cut
        for rs in [new, *old]:
            if counts[rs["metadata"]["uid"]] != int(rs["spec"].get("replicas") or 0):
                api.merge_patch(rs, {"spec": {"replicas": counts[rs["metadata"]["uid"]]}})
        limit = int(spec.get("revisionHistoryLimit", 10))
        idle = [
            rs for rs in old if counts[rs["metadata"]["uid"]] == 0 and not any(owned_by(p, rs) for p in pods)
        ]
        for rs in idle[: max(0, len(idle) - limit)]:
            api.delete(rs)
        self._status(api, dep, new, old, pods, replicas, unavailable)

    def _status(
        self,
        api: Api,
        dep: dict[str, Any],
        new: dict[str, Any],
        old: list[dict[str, Any]],
        pods: list[dict[str, Any]],
        replicas: int,
        unavailable: int,
    ) -> None:
        now = now_rfc3339()
        mine = [p for p in pods if any(owned_by(p, rs) for rs in [new, *old])]
        updated = [p for p in mine if owned_by(p, new)]
        ready = sum(1 for p in mine if _ready(p))
        status: dict[str, Any] = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": len(mine),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if replicas - ready > 0:
            status["unavailableReplicas"] = replicas - ready
        complete = len(updated) == replicas and ready >= replicas and len(mine) == len(updated)
        uid = dep["metadata"]["uid"]
        signature = (new["metadata"]["uid"], len(updated), sum(1 for p in updated if _ready(p)), len(mine))
        last = self.progress.get(uid)
        if last is None or last[0] != signature:
            self.progress[uid] = last = (signature, time.monotonic())
        old_conds = {c["type"]: c for c in (dep.get("status") or {}).get("conditions") or []}
        rs_name = new["metadata"]["name"]
        deadline = float(dep["spec"].get("progressDeadlineSeconds", 600))
        if complete:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif time.monotonic() - last[1] > deadline:
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        available = (
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if ready >= replicas - unavailable
            else ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        )
        conds = []
        for ctype, (st, reason, message) in (("Available", available), ("Progressing", progressing)):
            prev = old_conds.get(ctype) or {}
            same = prev.get("status") == st and prev.get("reason") == reason
            conds.append(
                {
                    "type": ctype,
                    "status": st,
                    "reason": reason,
                    "message": message,
                    "lastUpdateTime": prev.get("lastUpdateTime", now) if same else now,
                    "lastTransitionTime": prev.get("lastTransitionTime", now)
                    if prev.get("status") == st
                    else now,
                }
            )
        status["conditions"] = conds
        api.set_status(dep, status)

    @staticmethod
    def _replicaset(
        dep: dict[str, Any], template: dict[str, Any], revision: int, replicas: int
    ) -> dict[str, Any]:
        phash = template_hash(template)
        tmpl = copy.deepcopy(template)
        tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = phash
        selector = copy.deepcopy(dep["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = phash
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{dep['metadata']['name']}-{phash}",
                "namespace": dep["metadata"]["namespace"],
                "labels": tmpl["metadata"]["labels"],
                "annotations": {REVISION: str(revision)},
                "ownerReferences": [owner_ref(dep)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": tmpl},
        }

    # ------------------------------------------------------------------ replicaset
    def _sync_replicaset(self, api: Api, rs: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        want = int(rs["spec"].get("replicas") or 0)
        live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        for pod in [p for p in pods if p not in live]:
            api.delete(pod)
        if len(live) < want:
            for _ in range(want - len(live)):
                api.create(self._pod(rs))
        elif len(live) > want:
            # Kubernetes' ranking: not ready before ready, then the most recently created first
            newest = sorted(
                live, key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"], reverse=True
            )
            not_ready = [p for p in newest if not _ready(p)]
            ready = [p for p in newest if _ready(p)]
            for pod in [*not_ready, *ready][: len(live) - want]:
                api.delete(pod)
        n_ready = sum(1 for p in live if _ready(p))
        api.set_status(
            rs,
            {
                "replicas": len(live),
                "fullyLabeledReplicas": len(live),
                "readyReplicas": n_ready,
                "availableReplicas": n_ready,
                "observedGeneration": rs["metadata"]["generation"],
            },
        )

    @staticmethod
    def _pod(rs: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(rs["spec"]["template"])
        meta = template.get("metadata") or {}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{rs['metadata']['name']}-",
                "namespace": rs["metadata"]["namespace"],
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "ownerReferences": [owner_ref(rs)],
            },
            "spec": template.get("spec") or {},
        }
