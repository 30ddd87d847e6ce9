"""The Job's podFailurePolicy, the status reasons and the CLI exit codes come from one table and agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers import convert_job, train_job
from trtforge_operator.status import FAILURE_REASONS, PodReport, failure_reason
from trtforge_runtime.errors import failure_table

MakePlan = Callable[..., Plan]


def _fail_job_codes(job: dict[str, Any]) -> list[int]:
    rules = job["spec"]["podFailurePolicy"]["rules"]
    fail = [r for r in rules if r["action"] == "FailJob" and "onExitCodes" in r]
    assert len(fail) == 1 and fail[0]["onExitCodes"]["operator"] == "In"
    return list(fail[0]["onExitCodes"]["values"])


def test_job_fails_at_once_exactly_on_the_permanent_exit_codes(make_plan: MakePlan) -> None:
    plan = make_plan()
    permanent = sorted(code for code, f in failure_table().items() if f.permanent)
    assert 9 in permanent  # TrainingError: a deterministic export failure must not retry
    assert _fail_job_codes(train_job.train_job(plan)) == permanent
    for target in plan.convert_jobs.values():
        assert _fail_job_codes(convert_job.convert_job(plan, target)) == permanent


def test_status_reason_of_each_exit_code_is_the_table_reason() -> None:
    job = {"metadata": {"name": "j"}, "status": {"conditions": []}}
    for code, failure in failure_table().items():
        reason = failure_reason(job, PodReport(pod="p", exit_code=code))
        if code == 1:
            assert reason == "JobFailed"  # no more specific reason than the Job's own
        else:
            assert reason == failure.reason
        assert reason in FAILURE_REASONS  # a failed revision is recognised as failed, not re-run
