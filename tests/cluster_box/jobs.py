"""The job controller: pods for a Job, and the Job's status and conditions from their outcome.

As in Kubernetes (https://kubernetes.io/docs/concepts/workloads/controllers/job/):
- pods are created up to `parallelism` until `completions` succeeded (Indexed Jobs: one pod per
  missing index, with the completion-index annotation, label, JOB_COMPLETION_INDEX and hostname);
- a failed pod is checked against `podFailurePolicy` rules in order: `FailJob` fails the Job at once
  (reason PodFailurePolicy), `Ignore` does not count the failure, `Count` (or no match) counts it;
- more counted failures than `backoffLimit` fail it (BackoffLimitExceeded); a replacement pod waits the
  controller's back-off (10 s doubling, at most 6 min);
- `activeDeadlineSeconds` fails it (DeadlineExceeded);
- a finished Job gets FailureTarget+Failed or SuccessCriteriaMet+Complete, its active pods are deleted,
  and it is deleted `ttlSecondsAfterFinished` after it finished.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

from cluster_box.api import Api, owned_by, owner_ref
from kube_emulator.emulator import now_rfc3339

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
BACKOFF_BASE, BACKOFF_MAX = 10.0, 360.0


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _finished(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _exit_codes(pod: dict[str, Any], container: str | None) -> list[int]:
    codes = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term and (container is None or cs.get("name") == container):
            codes.append(int(term.get("exitCode", 0)))
    return codes


def match_rule(job: dict[str, Any], pod: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The first podFailurePolicy rule the failed pod matches, with its index."""
    rules = ((job["spec"].get("podFailurePolicy") or {}).get("rules")) or []
    for i, rule in enumerate(rules):
        on_codes = rule.get("onExitCodes")
        if on_codes:
            values = set(on_codes.get("values") or [])
            codes = [c for c in _exit_codes(pod, on_codes.get("containerName")) if c != 0]
            hit = [c for c in codes if (c in values) == (on_codes.get("operator", "In") == "In")]
            if hit:
                return i, {**rule, "_code": hit[0]}
        for pc in rule.get("onPodConditions") or []:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond.get("type") == pc.get("type") and cond.get("status") == pc.get("status", "True"):
                    return i, rule
    return None


class JobController:
    def __init__(self) -> None:
        self.last_failure: dict[str, float] = {}  # job uid -> monotonic time of the last counted failure

    def sync(self, api: Api) -> None:
        pods = api.list("v1", "Pod")
        for job in api.list("batch/v1", "Job"):
            if job["metadata"].get("deletionTimestamp"):
                continue
            self._sync_job(api, job, [p for p in pods if owned_by(p, job)])

    def _sync_job(self, api: Api, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        spec, status = job["spec"], copy.deepcopy(job.get("status") or {})
        now = now_rfc3339()
        if _finished(job):
            ttl = spec.get("ttlSecondsAfterFinished")
            done = _parse_time(status.get("completionTime")) or _parse_time(
                next((c.get("lastTransitionTime") for c in status.get("conditions") or []), None)
            )
            if ttl is not None and done is not None and time.time() >= done + int(ttl):
                api.delete(job)
            for pod in pods:
                if _phase(pod) not in ("Succeeded", "Failed") and not pod["metadata"].get(
                    "deletionTimestamp"
                ):
                    api.delete(pod)
            return
        status.setdefault("startTime", now)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        active = [p for p in live if _phase(p) not in ("Succeeded", "Failed")]
        succeeded = [p for p in pods if _phase(p) == "Succeeded"]
        failed_pods = sorted(
            (p for p in pods if _phase(p) == "Failed"), key=lambda p: p["metadata"]["creationTimestamp"]
        )
        counted, fail_job = 0, None
        for pod in failed_pods:
            hit = match_rule(job, pod)
            action = hit[1].get("action") if hit else "Count"
            if action == "Ignore":
                continue
            if action == "FailJob" and hit is not None and fail_job is None:
                idx, rule = hit
                container = ((rule.get("onExitCodes") or {}).get("containerName")) or "main"
                fail_job = (
                    "PodFailurePolicy",
                    f"Container {container} for pod {pod['metadata']['namespace']}/{pod['metadata']['name']} "
                    f"failed with exit code {rule.get('_code')} matching FailJob rule at index {idx}",
                )
            counted += 1
        if counted > int(status.get("failed") or 0):
            self.last_failure[job["metadata"]["uid"]] = time.monotonic()
        completions = int(spec.get("completions") or 1)
        indexed = spec.get("completionMode") == "Indexed"
        done_indexes = sorted(
            {int(p["metadata"].get("annotations", {}).get(INDEX_KEY, 0)) for p in succeeded}
        )
        n_succeeded = len(done_indexes) if indexed else len(succeeded)
        status.update(
            active=len(active),
            ready=sum(1 for p in active if _ready(p)),
            succeeded=n_succeeded,
            failed=counted,
            terminating=len(pods) - len(live),
            uncountedTerminatedPods={},
        )
        if indexed and done_indexes:
            status["completedIndexes"] = ",".join(str(i) for i in done_indexes)
        verdict: tuple[str, str] | None = fail_job
        backoff_limit = spec.get("backoffLimitPerIndex", spec.get("backoffLimit", 6))
        if verdict is None and counted > int(backoff_limit):
            verdict = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        start = _parse_time(status["startTime"])
        deadline = spec.get("activeDeadlineSeconds")
        if verdict is None and deadline and start and time.time() - start > int(deadline):
            verdict = ("DeadlineExceeded", "Job was active longer than specified deadline")
        if verdict is not None:
            for pod in active:
                api.delete(pod)
            status["conditions"] = [
                {
                    "type": t,
                    "status": "True",
                    "reason": verdict[0],
                    "message": verdict[1],
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
                for t in ("FailureTarget", "Failed")
            ]
            api.set_status(job, status)
            return
        if n_succeeded >= completions:
            reason, message = "CompletionsReached", "Reached expected number of succeeded pods"
            status["conditions"] = [
                {
                    "type": t,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
                for t in ("SuccessCriteriaMet", "Complete")
            ]
            status["completionTime"] = now
            api.set_status(job, status)
            return
        api.set_status(job, status)
        if counted:
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (counted - 1))
            if time.monotonic() - self.last_failure.get(job["metadata"]["uid"], 0.0) < delay:
                return
        parallelism = int(spec.get("parallelism", 1))
        if indexed:
            busy = {int(p["metadata"].get("annotations", {}).get(INDEX_KEY, -1)) for p in active}
            todo = [i for i in range(completions) if i not in busy and i not in done_indexes]
            for index in todo[: max(0, parallelism - len(active))]:
                api.create(self._pod(job, index))
        else:
            want = min(parallelism, completions - n_succeeded) - len(active)
            for _ in range(max(0, want)):
                api.create(self._pod(job, None))

    @staticmethod
    def _pod(job: dict[str, Any], index: int | None) -> dict[str, Any]:
        template = copy.deepcopy(job["spec"].get("template") or {})
        meta = template.get("metadata") or {}
        name = job["metadata"]["name"]
        labels = dict(meta.get("labels") or {})
        labels.setdefault("batch.kubernetes.io/job-name", name)
        labels.setdefault("job-name", name)
        annotations = dict(meta.get("annotations") or {})
        spec = template.get("spec") or {}
        generate = f"{name}-"
        if index is not None:
            labels[INDEX_KEY] = str(index)
            annotations[INDEX_KEY] = str(index)
            generate = f"{name}-{index}-"
            if spec.get("subdomain"):
                spec["hostname"] = f"{name}-{index}"
            for c in spec.get("containers") or []:
                c.setdefault("env", []).append(
                    {
                        "name": "JOB_COMPLETION_INDEX",
                        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}},
                    }
                )
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": generate,
                "namespace": job["metadata"]["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [owner_ref(job)],
            },
            "spec": spec,
        }
