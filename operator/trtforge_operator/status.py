"""Status bookkeeping: conditions, phase, revision history, and reading Job outcomes.

Everything here is pure (dicts in, dicts out) except that `StatusBuilder` starts from the object's
current status: a condition's lastTransitionTime changes only when its status changes, and `patch()`
returns only the fields that differ (nothing at all when the reconcile changed nothing), so status
writes are minimal and a reconcile that finds the world unchanged writes nothing.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from trtforge_runtime.artifacts import utc_now
from trtforge_runtime.errors import exit_code_reasons

CONDITION_TYPES = ("Trained", "EngineBuilt", "Available", "Progressing", "Degraded")
# status.serving keys the operator owns (desiredReplicas belongs to the autoscaler)
SERVING_KEYS = ("revision", "replicas", "readyReplicas", "selector", "url", "history", "lastGoodRevision")
MESSAGE_LIMIT = 2048
# exit code of a stage's command -> status reason: read from the one failure table on the error classes
EXIT_CODE_REASONS = exit_code_reasons()
FAILURE_REASONS = frozenset(
    {
        *EXIT_CODE_REASONS.values(),
        "JobFailed",
        "BackoffLimitExceeded",
        "DeadlineExceeded",
        "PodFailurePolicy",
        "FailedIndexes",
        "OOMKilled",
        "Error",
    }
)


# ---------------------------------------------------------------------- conditions


def find_condition(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """A new condition list with `type_` set; lastTransitionTime moves only when `status` changes."""
    message = message[:MESSAGE_LIMIT]
    old = find_condition(conditions, type_)
    cond: dict[str, Any] = {"type": type_, "status": status, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    cond["lastTransitionTime"] = old.get("lastTransitionTime") if old and old.get("status") == status else now
    if old and old.get("status") == status and not old.get("lastTransitionTime"):
        cond["lastTransitionTime"] = now
    out = [c for c in conditions if c.get("type") != type_] + [cond]
    return sorted(out, key=lambda c: CONDITION_TYPES.index(c["type"]) if c["type"] in CONDITION_TYPES else 99)


# ---------------------------------------------------------------------- diff


def merge_diff(current: Any, desired: Any) -> Any:
    """A JSON merge patch turning `current` into `desired` for the keys `desired` names (None = delete)."""
    out: dict[str, Any] = {}
    cur = current if isinstance(current, dict) else {}
    for key, want in desired.items():
        have = cur.get(key)
        if want is None:
            if key in cur:
                out[key] = None
        elif isinstance(want, dict) and isinstance(have, dict):
            sub = merge_diff(have, want)
            if sub:
                out[key] = sub
        elif want != have:
            out[key] = want
    return out


# ---------------------------------------------------------------------- builder


@dataclass
class StatusBuilder:
    """Accumulates the status a reconcile computes, starting from the current one."""

    current: dict[str, Any]
    generation: int | None
    now: str = field(default_factory=utc_now)
    desired: dict[str, Any] = field(default_factory=dict)
    failure: tuple[str, str] | None = None  # (reason, message)
    stage: str | None = None  # "Training" | "Converting" | "Deploying" while a stage runs

    def __post_init__(self) -> None:
        self.desired["conditions"] = copy.deepcopy(self.current.get("conditions") or [])

    @property
    def conditions(self) -> list[dict[str, Any]]:
        conds: list[dict[str, Any]] = self.desired["conditions"]
        return conds

    def condition(self, type_: str) -> dict[str, Any] | None:
        return find_condition(self.conditions, type_)

    def set(self, type_: str, status: str, reason: str, message: str = "") -> None:
        self.desired["conditions"] = set_condition(
            self.conditions, type_, status, reason, message, self.generation, self.now
        )

    def fail(self, reason: str, message: str) -> None:
        if self.failure is None:
            self.failure = (reason, message)

    def running(self, stage: str) -> None:
        if self.stage is None:
            self.stage = stage

    def section(self, name: str) -> dict[str, Any]:
        """The current value of status.<name> (model, engine, serving), as a copy."""
        return dict(self.current.get(name) or {})

    def finish(self, phase_if_ok: str, message: str) -> None:
        """Set phase, message, Progressing and Degraded from what the stages reported."""
        self.desired["observedGeneration"] = self.generation
        if self.failure is not None:
            reason, msg = self.failure
            self.desired["phase"] = "Failed"
            self.desired["reason"] = reason
            self.desired["message"] = msg[:MESSAGE_LIMIT]
            self.set("Progressing", "False", reason, msg)
            self.set("Degraded", "True", reason, msg)
            return
        degraded = self.condition("Degraded")
        self.desired["reason"] = None  # only a Failed phase has a reason
        if self.stage is not None:
            self.desired["phase"] = self.stage
            self.desired["message"] = message
            self.set("Progressing", "True", self.stage, message)
        else:
            self.desired["phase"] = phase_if_ok
            self.desired["message"] = message
            self.set("Progressing", "False", "Complete", message)
        if degraded is None or degraded.get("status") != "True" or not self.degraded_kept:
            self.set("Degraded", "False", "AsExpected", "")

    degraded_kept: bool = False

    def keep_degraded(self, reason: str, message: str) -> None:
        """Degraded=True while not failed (e.g. serving a rolled-back revision)."""
        self.degraded_kept = True
        self.set("Degraded", "True", reason, message)

    def patch(self) -> dict[str, Any]:
        return merge_diff(self.current, self.desired)


# ---------------------------------------------------------------------- revision history


def record_revision(
    history: list[dict[str, Any]] | None,
    revision: str,
    outcome: str,
    engine_uri: str | None,
    now: str,
    limit: int,
) -> list[dict[str, Any]]:
    """History (newest last) with `revision` set to `outcome`; a new Ready supersedes older Ready ones."""
    out = [dict(h) for h in history or []]
    entry = next((h for h in out if h.get("revision") == revision), None)
    if entry is None:
        entry = {"revision": revision, "deployedAt": now}
        if engine_uri:
            entry["engineUri"] = engine_uri
        out.append(entry)
    if entry.get("outcome") == outcome:
        return out[-limit:]
    entry["outcome"] = outcome
    if outcome == "Ready":
        for h in out:
            if h is not entry and h.get("outcome") == "Ready":
                h["outcome"] = "Superseded"
    return out[-limit:]


def revision_outcome(history: list[dict[str, Any]] | None, revision: str) -> str | None:
    entry = next((h for h in history or [] if h.get("revision") == revision), None)
    return entry.get("outcome") if entry else None


# ---------------------------------------------------------------------- Jobs


def job_state(job: dict[str, Any]) -> str:
    """ "succeeded", "failed" or "running", from the Job's conditions (as the job controller sets them)."""
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if cond.get("type") in ("Failed", "FailureTarget"):
            return "failed"
    return "running"


def job_condition_reason(job: dict[str, Any]) -> tuple[str, str]:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") in ("Failed", "FailureTarget") and cond.get("status") == "True":
            return cond.get("reason") or "JobFailed", cond.get("message") or ""
    return "JobFailed", ""


def _terminated(pod: dict[str, Any], container: str) -> dict[str, Any] | None:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            state = cs.get("state", {}).get("terminated") or cs.get("lastState", {}).get("terminated")
            return dict(state) if state else None
    return None


def _index(pod: dict[str, Any]) -> int:
    meta = pod.get("metadata", {})
    value = (meta.get("annotations") or {}).get("batch.kubernetes.io/job-completion-index") or (
        meta.get("labels") or {}
    ).get("batch.kubernetes.io/job-completion-index")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


@dataclass
class PodReport:
    """What a Job's pod said when it ended."""

    pod: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    summary: dict[str, Any] | None = None  # the JSON termination message
    text: str | None = None  # a termination message that is not JSON (FallbackToLogsOnError)


def pod_report(pods: list[dict[str, Any]], container: str, succeeded: bool) -> PodReport:
    """The report of the pod that decided the Job's outcome: for success a pod that exited 0, for
    failure the newest failed one; worker/index 0 first for Indexed Jobs."""
    candidates = []
    for pod in pods:
        term = _terminated(pod, container)
        if term is None:
            continue
        code = term.get("exitCode")
        if succeeded != (code == 0):
            continue
        created = pod.get("metadata", {}).get("creationTimestamp") or ""
        candidates.append((_index(pod), _neg(created), pod, term))
    if not candidates:
        return PodReport()
    candidates.sort(key=lambda c: (c[0], c[1]))
    _, _, pod, term = candidates[0]
    report = PodReport(pod=pod["metadata"]["name"], exit_code=term.get("exitCode"), reason=term.get("reason"))
    message = (term.get("message") or "").strip()
    if message:
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            report.summary = parsed
        else:
            report.text = message
    return report


def _neg(timestamp: str) -> tuple[int, ...]:
    """Sort key that puts newer RFC 3339 timestamps first."""
    return tuple(-ord(ch) for ch in timestamp)


# kubelet reasons of a waiting container that no retry of the pod can fix until the user acts
# (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-state-waiting):
# a Secret or ConfigMap (key) the pod references does not exist
BLOCKED_REASONS = ("CreateContainerConfigError",)


def blocked_pod(pods: list[dict[str, Any]]) -> str | None:
    """`pod NAME cannot start: MESSAGE` for the first pod whose container waits on something missing."""
    for pod in pods:
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in BLOCKED_REASONS:
                name = pod.get("metadata", {}).get("name")
                return f"pod {name} cannot start: {waiting['reason']}: {waiting.get('message') or ''}".strip()
    return None


def failure_reason(job: dict[str, Any], report: PodReport) -> str:
    """The most specific reason: the stage's own exit code, then the container's, then the Job's."""
    if report.exit_code in EXIT_CODE_REASONS:
        return EXIT_CODE_REASONS[int(report.exit_code or 0)]
    if report.reason == "OOMKilled":
        return "OOMKilled"
    reason, _ = job_condition_reason(job)
    return reason if reason != "PodFailurePolicy" else "JobFailed"


def failure_message(job: dict[str, Any], report: PodReport, log_tail: str | None) -> str:
    name = job.get("metadata", {}).get("name")
    reason, detail = job_condition_reason(job)
    parts = [f"Job {name} failed ({reason})"]
    if report.summary and report.summary.get("error"):
        parts.append(str(report.summary["error"]))
    elif detail:
        parts.append(detail)
    if report.exit_code is not None:
        parts.append(f"exit code {report.exit_code}")
    text = ": ".join(parts[:2]) + (f" ({parts[2]})" if len(parts) > 2 else "")
    tail = log_tail or report.text
    if tail:
        lines = tail.rstrip().splitlines()[-10:]
        text += "\nlast log lines of pod " + (report.pod or "?") + ":\n" + "\n".join(lines)
    return text[:MESSAGE_LIMIT]


# ---------------------------------------------------------------------- Deployments


def deployment_condition(dep: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return find_condition(dep.get("status", {}).get("conditions"), type_)


def deadline_exceeded(dep: dict[str, Any]) -> bool:
    cond = deployment_condition(dep, "Progressing")
    return bool(cond and cond.get("status") == "False" and cond.get("reason") == "ProgressDeadlineExceeded")


def rolled_out(dep: dict[str, Any]) -> bool:
    """The Deployment controller has seen the current template and all wanted pods are updated and ready."""
    meta, spec, st = dep.get("metadata", {}), dep.get("spec", {}), dep.get("status") or {}
    if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 1):
        return False
    if deadline_exceeded(dep):  # a stalled rollout is not done, whatever the counters say
        return False
    want = int(spec.get("replicas", 1))
    updated = int(st.get("updatedReplicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    total = int(st.get("replicas") or 0)
    return updated >= want and available >= want and total <= updated
