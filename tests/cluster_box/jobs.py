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


def count_failures(job: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[int, tuple[str, str] | None]:
    """Failed pods that count against the backoff limit, and the FailJob verdict of the first pod that
    matches such a podFailurePolicy rule (reason, message as the job controller words it)."""
    counted, fail_job = 0, None
    failed = sorted(
        (p for p in pods if _phase(p) == "Failed"), key=lambda p: p["metadata"]["creationTimestamp"]
    )
    for pod in failed:
        hit = match_rule(job, pod)
        action = hit[1].get("action") if hit else "Count"
        if action == "Ignore":
            continue
        if action == "FailJob" and hit is not None and fail_job is None:
            idx, rule = hit
            container = ((rule.get("onExitCodes") or {}).get("containerName")) or "main"
            meta = pod["metadata"]
            fail_job = (
                "PodFailurePolicy",
                f"Container {container} for pod {meta['namespace']}/{meta['name']} failed with exit code "
                f"{rule.get('_code')} matching FailJob rule at index {idx}",
            )
        counted += 1
    return counted, fail_job


def succeeded_indexes(job: dict[str, Any], pods: list[dict[str, Any]]) -> list[int]:
    """Completion indexes that succeeded (Indexed Jobs), else one entry per succeeded pod."""
    succeeded = [p for p in pods if _phase(p) == "Succeeded"]
    if job["spec"].get("completionMode") != "Indexed":
        return list(range(len(succeeded)))
    return sorted({int(p["metadata"].get("annotations", {}).get(INDEX_KEY, 0)) for p in succeeded})


def limits_verdict(spec: dict[str, Any], status: dict[str, Any], failures: int) -> tuple[str, str] | None:
    """BackoffLimitExceeded or DeadlineExceeded, when the Job ran into its limits."""
    if failures > int(spec.get("backoffLimitPerIndex", spec.get("backoffLimit", 6))):
        return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    start = _parse_time(status.get("startTime"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline and start and time.time() - start > int(deadline):
        return "DeadlineExceeded", "Job was active longer than specified deadline"
    return None


def _conditions(types: tuple[str, str], reason: str, message: str, now: str) -> list[dict[str, Any]]:
    return [
        {
            "type": t,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
        for t in types
    ]


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
        if _finished(job):
            self._after_finish(api, job, pods)
            return
        spec, status = job["spec"], copy.deepcopy(job.get("status") or {})
        now = now_rfc3339()
        status.setdefault("startTime", now)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        active = [p for p in live if _phase(p) not in ("Succeeded", "Failed")]
        counted, fail_job = count_failures(job, pods)
        if counted > int(status.get("failed") or 0):
            self.last_failure[job["metadata"]["uid"]] = time.monotonic()
        done_indexes = succeeded_indexes(job, pods)
        status.update(
            active=len(active),
            ready=sum(1 for p in active if _ready(p)),
            succeeded=len(done_indexes),
            failed=counted,
            terminating=len(pods) - len(live),
            uncountedTerminatedPods={},
        )
        if spec.get("completionMode") == "Indexed" and done_indexes:
            status["completedIndexes"] = ",".join(str(i) for i in done_indexes)
        verdict = fail_job or limits_verdict(spec, status, counted)
        if verdict is not None:
            for pod in active:
                api.delete(pod)
            status["conditions"] = _conditions(("FailureTarget", "Failed"), *verdict, now)
        elif len(done_indexes) >= int(spec.get("completions") or 1):
            status["conditions"] = _conditions(
                ("SuccessCriteriaMet", "Complete"),
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            )
            status["completionTime"] = now
        api.set_status(job, status)
        if verdict is None and "completionTime" not in status:
            self._create_pods(api, job, active, done_indexes, counted)

    def _after_finish(self, api: Api, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """A finished Job: its still active pods are deleted, and the Job itself after its TTL."""
        status = job.get("status") or {}
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        done = _parse_time(status.get("completionTime")) or _parse_time(
            next((c.get("lastTransitionTime") for c in status.get("conditions") or []), None)
        )
        if ttl is not None and done is not None and time.time() >= done + int(ttl):
            api.delete(job)
        for pod in pods:
            if _phase(pod) not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
                api.delete(pod)

    def _create_pods(
        self, api: Api, job: dict[str, Any], active: list[dict[str, Any]], done: list[int], failures: int
    ) -> None:
        """New pods up to parallelism, after the back-off that follows a counted failure."""
        spec = job["spec"]
        if failures:
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1))
            if time.monotonic() - self.last_failure.get(job["metadata"]["uid"], 0.0) < delay:
                return
        completions, parallelism = int(spec.get("completions") or 1), int(spec.get("parallelism", 1))
        if spec.get("completionMode") == "Indexed":
            busy = {int(p["metadata"].get("annotations", {}).get(INDEX_KEY, -1)) for p in active}
            todo = [i for i in range(completions) if i not in busy and i not in done]
            for index in todo[: max(0, parallelism - len(active))]:
                api.create(self._pod(job, index))
        else:
            for _ in range(max(0, min(parallelism, completions - len(done)) - len(active))):
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
