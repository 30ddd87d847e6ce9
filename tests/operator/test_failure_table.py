"""The Job's podFailurePolicy, the status reasons and the CLI exit codes come from one table and agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers import convert_job, train_job
from trtforge_operator.status import FAILURE_REASONS, PodReport, failure_reason
from trtforge_runtime.errors import (
    RemoteStorageError,
    RemoteStorageUnavailableError,
    TrainingError,
    TrainingKilledError,
    failure_table,
)

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


def _documented_table() -> dict[int, tuple[str, str]]:
    text = (Path(__file__).parents[2] / "docs" / "operator.md").read_text()
    block = text.split("<!-- failure-table -->", 1)[1].split("<!-- /failure-table -->", 1)[0]
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = (cells[1], cells[2])
    return rows


def test_the_documented_failure_table_is_the_table() -> None:
    documented = _documented_table()
    table = failure_table()
    assert sorted(documented) == sorted(table)
    for code, failure in table.items():
        reason, retry = documented[code]
        assert retry == ("permanent" if failure.permanent else "transient"), code
        if code != 1:
            assert reason == f"`{failure.reason}`", code


def test_remote_storage_blips_are_retried_and_missing_or_denied_objects_are_not(make_plan: MakePlan) -> None:
    assert RemoteStorageUnavailableError.exit_code != RemoteStorageError.exit_code
    fail_at_once = _fail_job_codes(train_job.train_job(make_plan()))
    assert RemoteStorageError.exit_code in fail_at_once
    assert RemoteStorageUnavailableError.exit_code not in fail_at_once
    job = {
        "metadata": {"name": "j"},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
    }
    report = PodReport(pod="p", exit_code=RemoteStorageUnavailableError.exit_code)
    assert failure_reason(job, report) == "RemoteStorageUnavailable"  # also once the retries ran out
    assert _documented_table()[11] == ("`RemoteStorageUnavailable`", "transient")


def test_killed_training_code_is_retried_and_a_crash_is_not(make_plan: MakePlan) -> None:
    """SIGKILL (OOM killer) / SIGTERM of custom training code: exit 12, retried within backoffLimit."""
    fail_at_once = _fail_job_codes(train_job.train_job(make_plan()))
    assert TrainingError.exit_code in fail_at_once
    assert TrainingKilledError.exit_code not in fail_at_once
    job = {
        "metadata": {"name": "j"},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
    }
    report = PodReport(pod="p", exit_code=TrainingKilledError.exit_code)
    assert failure_reason(job, report) == "TrainingKilled"  # also once the retries ran out
    assert _documented_table()[12] == ("`TrainingKilled`", "transient")
