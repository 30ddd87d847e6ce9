"""Explicit retry of a failed stage, without a spec edit:

    kubectl annotate md digits trtforge.dev/retry=$(date +%s) --overwrite

Each new value of the `trtforge.dev/retry` annotation reruns the failed stage of the current revision
once: its failed Job(s) are deleted (a multi-GPU conversion keeps the Jobs that succeeded) and created
again, the stage's condition goes back to Unknown and the phase leaves Failed. The value handled last
is recorded in `trtforge.dev/retry-handled`, so the same value never reruns anything twice. A retry
while nothing has failed (or after a failure no Job can fix, such as an invalid spec) is recorded too
and says so in an Event.
"""

from __future__ import annotations

from typing import Any

from trtforge_runtime.spec.model import API_VERSION, KIND

from trtforge_operator import events
from trtforge_operator.apply import Kube
from trtforge_operator.plan import Plan
from trtforge_operator.status import FAILURE_REASONS, StatusBuilder, job_state

ANNOTATION = "trtforge.dev/retry"
HANDLED = "trtforge.dev/retry-handled"


def requested(body: dict[str, Any]) -> str | None:
    """The retry token not handled yet, or None."""
    annotations = body["metadata"].get("annotations") or {}
    token = annotations.get(ANNOTATION)
    return str(token) if token and token != annotations.get(HANDLED) else None


def failed_stage(plan: Plan, st: StatusBuilder) -> tuple[str, list[str]] | None:
    """(condition type, Job names) of the stage that failed for the current revision, if a Job did."""
    stages = (
        ("Trained", "model", plan.training, [plan.train_job]),
        ("EngineBuilt", "engine", plan.engine, list(plan.convert_jobs)),
    )
    for condition, section, revision, names in stages:
        cond = st.condition(condition)
        if (
            cond
            and cond.get("status") == "False"
            and cond.get("reason") in FAILURE_REASONS
            and st.section(section).get("revision") == revision
        ):
            return condition, names
    return None


async def retry_failed_stage(
    kube: Kube, plan: Plan, st: StatusBuilder, body: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> str | None:
    """Rerun the failed stage if a new token asks; returns the token to `mark_handled` after the
    reconcile's status write (a reconcile that fails before that handles the token again)."""
    token = requested(body)
    if token is None:
        return None
    stage = failed_stage(plan, st)
    if stage is None:
        message = f"retry {token}: nothing to rerun (phase {st.current.get('phase') or 'unknown'})"
        await events.post(kube, body, "Normal", "RetryIgnored", message)
    else:
        condition, names = stage
        for name in names:
            job = jobs.get(name)
            if job is not None and job_state(job) == "failed":
                await kube.delete("batch/v1", "Job", plan.owner.namespace, name)
                jobs.pop(name)
        message = f"retry {token}: rerunning the failed stage ({', '.join(names)})"
        st.set(condition, "Unknown", "Retrying", message)
        await events.post(kube, body, "Normal", "RetryStarted", message)
    return token


async def mark_handled(kube: Kube, body: dict[str, Any], token: str) -> None:
    meta = body["metadata"]
    patch = {"metadata": {"annotations": {HANDLED: token}}}
    await kube.patch(API_VERSION, KIND, meta["namespace"], meta["name"], patch)
