"""Reading what Jobs, pods and Deployments report, and turning it into the ModelDeployment's status.

Objects are written the way the job controller, the kubelet and the deployment controller write them
(https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup,
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-states).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from trtforge_operator import status as s


def job(*conditions: tuple[str, str, str | None, str | None], name: str = "digits-train") -> dict[str, Any]:
    conds = []
    for type_, status, reason, message in conditions:
        cond: dict[str, Any] = {"type": type_, "status": status}
        if reason is not None:
            cond["reason"] = reason
        if message is not None:
            cond["message"] = message
        conds.append(cond)
    return {"metadata": {"name": name}, "status": {"conditions": conds}}


def pod(
    name: str,
    *,
    created: str = "2026-01-01T00:00:00Z",
    terminated: dict[str, Any] | None = None,
    last_terminated: dict[str, Any] | None = None,
    waiting: dict[str, Any] | None = None,
    container: str = "train",
    index: str | None = None,
    index_in: str = "annotations",
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if terminated is not None:
        state["terminated"] = terminated
    if waiting is not None:
        state["waiting"] = waiting
    cs: dict[str, Any] = {"name": container, "state": state}
    if last_terminated is not None:
        cs["lastState"] = {"terminated": last_terminated}
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if index is not None:
        meta[index_in] = {"batch.kubernetes.io/job-completion-index": index}
    return {"metadata": meta, "status": {"containerStatuses": [cs]}}


# ------------------------------------------------------------------------------------------------ Jobs
@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ((("Complete", "True", None, None),), "succeeded"),
        ((("SuccessCriteriaMet", "True", None, None),), "succeeded"),
        ((("Failed", "True", "BackoffLimitExceeded", None),), "failed"),
        ((("FailureTarget", "True", "PodFailurePolicy", None),), "failed"),
        ((("Failed", "False", None, None), ("Complete", "False", None, None)), "running"),
        ((("Suspended", "True", None, None),), "running"),
        ((), "running"),
    ],
)
def test_job_state_from_its_conditions(conditions: tuple[Any, ...], state: str) -> None:
    assert s.job_state(job(*conditions)) == state


def test_job_state_of_a_job_without_status_is_running() -> None:
    assert s.job_state({"metadata": {"name": "j"}}) == "running"


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ((("Failed", "True", "BackoffLimitExceeded", "Job has reached the backoff limit"),),
         ("BackoffLimitExceeded", "Job has reached the backoff limit")),
        ((("Complete", "False", None, None), ("FailureTarget", "True", "PodFailurePolicy", "exit 4")),
         ("PodFailurePolicy", "exit 4")),
        ((("Failed", "True", None, None),), ("JobFailed", "")),
        ((("Failed", "False", "BackoffLimitExceeded", "not yet"),), ("JobFailed", "")),
        ((("Complete", "True", "Done", "fine"),), ("JobFailed", "")),
        ((), ("JobFailed", "")),
    ],
)  # fmt: skip
def test_job_condition_reason(conditions: tuple[Any, ...], expected: tuple[str, str]) -> None:
    assert s.job_condition_reason(job(*conditions)) == expected


def test_job_condition_reason_without_status() -> None:
    assert s.job_condition_reason({"metadata": {"name": "j"}}) == ("JobFailed", "")


# ------------------------------------------------------------------------------------------------ pods
def test_pod_report_of_a_failure_is_the_newest_failed_pod_of_the_lowest_index() -> None:
    pods = [
        pod("w1", index="1", created="2026-01-01T00:00:09Z", terminated={"exitCode": 3, "message": "late"}),
        pod("w0-old", index="0", created="2026-01-01T00:00:01Z", terminated={"exitCode": 9}),
        pod("w0-new", index="0", created="2026-01-01T00:00:05Z", terminated={"exitCode": 4, "reason": "Error",
            "message": '{"ok": false, "error": "accuracy 0.5 < 0.9"}'}),
        pod("w0-ok", index="0", created="2026-01-01T00:00:07Z", terminated={"exitCode": 0}),
        pod("w0-running", index="0", created="2026-01-01T00:00:08Z"),
    ]  # fmt: skip
    report = s.pod_report(pods, "train", succeeded=False)
    assert (report.pod, report.exit_code, report.reason) == ("w0-new", 4, "Error")
    assert report.summary == {"ok": False, "error": "accuracy 0.5 < 0.9"} and report.text is None
    assert s.pod_report(pods, "train", succeeded=True).pod == "w0-ok"


def test_pod_report_reads_the_index_from_labels_too_and_a_bad_index_as_zero() -> None:
    pods = [
        pod("b", index="1", index_in="labels", terminated={"exitCode": 6}),
        pod("a", index="x", terminated={"exitCode": 7}),
    ]
    assert s.pod_report(pods, "train", succeeded=False).pod == "a"
    pods = [pod("c", index="2", index_in="labels", terminated={"exitCode": 6}),
            pod("d", index="1", index_in="labels", terminated={"exitCode": 7})]  # fmt: skip
    assert s.pod_report(pods, "train", succeeded=False).pod == "d"


def test_pod_report_uses_the_last_state_of_a_restarted_container_and_its_own_container_only() -> None:
    restarted = pod(
        "p", waiting={"reason": "CrashLoopBackOff"}, last_terminated={"exitCode": 9, "message": "boom"}
    )
    report = s.pod_report([restarted], "train", succeeded=False)
    assert (report.pod, report.exit_code, report.text, report.summary) == ("p", 9, "boom", None)
    other = pod("q", container="sidecar", terminated={"exitCode": 1})
    assert s.pod_report([other], "train", succeeded=False) == s.PodReport()
    assert s.pod_report([], "train", succeeded=True) == s.PodReport()


def test_a_termination_message_that_is_json_but_not_an_object_is_text() -> None:
    report = s.pod_report([pod("p", terminated={"exitCode": 1, "message": " [1, 2] \n"})], "train", False)
    assert report.text == "[1, 2]" and report.summary is None
    assert s.pod_report([pod("p", terminated={"exitCode": 1, "message": "  "})], "train", False).text is None


def test_blocked_pod_names_the_pod_the_reason_and_the_message() -> None:
    ok = pod("ok", waiting={"reason": "ContainerCreating"})
    blocked = pod("digits-train-x", waiting={"reason": "CreateContainerConfigError",
                                             "message": 'secret "s3-creds" not found'})  # fmt: skip
    assert s.blocked_pod([ok, blocked]) == (
        'pod digits-train-x cannot start: CreateContainerConfigError: secret "s3-creds" not found'
    )
    quiet = pod("p", waiting={"reason": "CreateContainerConfigError"})
    assert s.blocked_pod([quiet]) == "pod p cannot start: CreateContainerConfigError:"
    assert s.blocked_pod([ok, {"metadata": {"name": "new"}}]) is None
    assert s.blocked_pod([pod("t", terminated={"exitCode": 1})]) is None


# ------------------------------------------------------------------------------------------------ failure
@pytest.mark.parametrize(
    ("exit_code", "container_reason", "job_reason", "expected"),
    [
        (4, "Error", "PodFailurePolicy", "QualityGateFailed"),
        (7, None, "BackoffLimitExceeded", "AccuracyGateFailed"),
        (11, None, "PodFailurePolicy", "RemoteStorageUnavailable"),
        (137, "OOMKilled", "BackoffLimitExceeded", "OOMKilled"),
        (1, "Error", "BackoffLimitExceeded", "BackoffLimitExceeded"),
        (1, "Error", "PodFailurePolicy", "JobFailed"),
        (None, None, "DeadlineExceeded", "DeadlineExceeded"),
    ],
)
def test_failure_reason_is_the_most_specific_one(
    exit_code: int | None, container_reason: str | None, job_reason: str, expected: str
) -> None:
    report = s.PodReport(pod="p", exit_code=exit_code, reason=container_reason)
    assert s.failure_reason(job(("Failed", "True", job_reason, "m")), report) == expected
    assert expected in s.FAILURE_REASONS


def test_failure_message_with_the_stage_error_exit_code_and_last_log_lines() -> None:
    failed = job(("Failed", "True", "PodFailurePolicy", "Container train exited with 4"))
    report = s.PodReport(pod="p0", exit_code=4, summary={"error": "accuracy 0.5 < 0.9"})
    log = "\n".join(f"line {i}" for i in range(1, 13)) + "\n\n"
    assert s.failure_message(failed, report, log) == (
        "Job digits-train failed (PodFailurePolicy): accuracy 0.5 < 0.9 (exit code 4)\n"
        "last log lines of pod p0:\n" + "\n".join(f"line {i}" for i in range(3, 13))
    )


def test_failure_message_falls_back_to_the_job_condition_and_the_text_message() -> None:
    failed = job(("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"))
    report = s.PodReport(pod="p1", exit_code=None, summary={"ok": False}, text="Traceback\nValueError: bad")
    assert s.failure_message(failed, report, None) == (
        "Job digits-train failed (BackoffLimitExceeded): Job has reached the specified backoff limit\n"
        "last log lines of pod p1:\nTraceback\nValueError: bad"
    )
    bare = s.failure_message(job(("Failed", "True", None, None)), s.PodReport(exit_code=2), "")
    assert bare == "Job digits-train failed (JobFailed): exit code 2"
    unknown = s.failure_message(job(), s.PodReport(), "x")
    assert unknown == "Job digits-train failed (JobFailed)\nlast log lines of pod ?:\nx"


def test_failure_message_is_cut_at_the_limit() -> None:
    report = s.PodReport(pod="p", exit_code=9, summary={"error": "e" * 5000})
    assert len(s.failure_message(job(("Failed", "True", "X", None)), report, None)) == s.MESSAGE_LIMIT


# ------------------------------------------------------------------------------------------------ Deployments
def deployment(generation: int = 2, observed: int = 2, replicas: int = 3, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "d", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, **status},
    }


@pytest.mark.parametrize(
    ("dep", "done"),
    [
        (deployment(updatedReplicas=3, availableReplicas=3, replicas=3), True),
        (deployment(updatedReplicas=4, availableReplicas=4, replicas=4), True),
        (deployment(observed=1, updatedReplicas=3, availableReplicas=3, replicas=3), False),
        (deployment(updatedReplicas=2, availableReplicas=3, replicas=3), False),
        (deployment(updatedReplicas=3, availableReplicas=2, replicas=3), False),
        (deployment(updatedReplicas=3, availableReplicas=3, replicas=4), False),  # an old pod still there
        (deployment(replicas=0, updatedReplicas=0, availableReplicas=0), True),
        ({"metadata": {"name": "d"}, "spec": {}, "status": {"observedGeneration": 1, "updatedReplicas": 1,
          "availableReplicas": 1, "replicas": 1}}, True),
        ({"metadata": {"name": "d"}, "spec": {}}, False),
    ],
)  # fmt: skip
def test_rolled_out(dep: dict[str, Any], done: bool) -> None:
    assert s.rolled_out(dep) is done


def test_a_stalled_rollout_is_not_rolled_out_whatever_the_counters_say() -> None:
    stalled = deployment(
        updatedReplicas=3,
        availableReplicas=3,
        replicas=3,
        conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
    )
    assert s.deadline_exceeded(stalled) and not s.rolled_out(stalled)
    progressing = deployment(
        conditions=[{"type": "Progressing", "status": "True", "reason": "ProgressDeadlineExceeded"}]
    )
    assert not s.deadline_exceeded(progressing)
    other = deployment(conditions=[{"type": "Progressing", "status": "False", "reason": "Paused"}])
    assert not s.deadline_exceeded(other)
    assert s.deployment_condition(stalled, "Progressing") == stalled["status"]["conditions"][0]
    assert s.deployment_condition({"metadata": {}}, "Available") is None


# ------------------------------------------------------------------------------------------------ builder
def conditions(patch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in patch["conditions"]}


def test_a_running_stage_is_the_phase_and_progressing() -> None:
    b = s.StatusBuilder({}, 3, now="t")
    b.running("Converting")
    b.running("Deploying")  # the first stage reported wins
    b.finish("Ready", "building engines")
    p = b.patch()
    assert (p["phase"], p["message"], p["observedGeneration"]) == ("Converting", "building engines", 3)
    c = conditions(p)
    assert (c["Progressing"]["status"], c["Progressing"]["reason"]) == ("True", "Converting")
    assert (c["Degraded"]["status"], c["Degraded"]["reason"]) == ("False", "AsExpected")
    assert "reason" not in p  # nothing to clear on a new object


def test_done_is_the_ok_phase_and_progressing_complete() -> None:
    b = s.StatusBuilder({}, 1, now="t")
    b.finish("Ready", "serving at http://digits")
    p = b.patch()
    assert (p["phase"], p["message"]) == ("Ready", "serving at http://digits")
    c = conditions(p)
    assert (c["Progressing"]["status"], c["Progressing"]["reason"]) == ("False", "Complete")
    assert c["Progressing"]["message"] == "serving at http://digits"


def test_the_first_failure_wins_and_its_message_is_cut_at_the_limit() -> None:
    b = s.StatusBuilder({}, 2, now="t")
    b.fail("TrainingFailed", "x" * 3000)
    b.fail("ConversionFailed", "later")
    b.finish("Ready", "")
    p = b.patch()
    assert (p["phase"], p["reason"], p["observedGeneration"]) == ("Failed", "TrainingFailed", 2)
    assert p["message"] == "x" * s.MESSAGE_LIMIT
    c = conditions(p)
    assert (c["Progressing"]["status"], c["Progressing"]["reason"]) == ("False", "TrainingFailed")
    assert (c["Degraded"]["status"], c["Degraded"]["reason"]) == ("True", "TrainingFailed")
    assert len(c["Degraded"]["message"]) == s.MESSAGE_LIMIT


def test_degraded_is_kept_only_while_someone_keeps_it() -> None:
    b = s.StatusBuilder({}, 1, now="t1")
    b.keep_degraded("RolledBack", "revision b missed its progress deadline")
    b.finish("Ready", "serving revision a")
    p = b.patch()
    c = conditions(p)
    assert p["phase"] == "Ready"
    assert (c["Degraded"]["status"], c["Degraded"]["reason"]) == ("True", "RolledBack")
    later = s.StatusBuilder(json.loads(json.dumps(p)), 2, now="t2")
    later.finish("Ready", "serving revision c")
    c = conditions(later.patch())
    assert (c["Degraded"]["status"], c["Degraded"]["reason"], c["Degraded"]["lastTransitionTime"]) == (
        "False",
        "AsExpected",
        "t2",
    )


def test_sections_are_copies_of_the_current_status() -> None:
    current = {"model": {"accuracy": 0.97}, "conditions": [{"type": "Trained", "status": "True"}]}
    b = s.StatusBuilder(current, 1, now="t")
    model = b.section("model")
    model["accuracy"] = 0.1
    assert current["model"] == {"accuracy": 0.97} and b.section("engine") == {}
    b.set("Trained", "False", "Retraining")
    assert current["conditions"] == [{"type": "Trained", "status": "True"}]  # the input is not changed
    assert b.condition("Trained") == {
        "type": "Trained", "status": "False", "reason": "Retraining", "message": "", "observedGeneration": 1,
        "lastTransitionTime": "t",
    }  # fmt: skip


def test_a_condition_without_a_generation_and_a_long_message() -> None:
    conds = s.set_condition([], "Available", "True", "Ready", "m" * 3000, None, "t")
    assert "observedGeneration" not in conds[0] and len(conds[0]["message"]) == s.MESSAGE_LIMIT
    # an old condition of the same status without lastTransitionTime (edited by hand) gets one
    again = s.set_condition(
        [{"type": "Available", "status": "True"}], "Available", "True", "Ready", "", 1, "t2"
    )
    assert again[0]["lastTransitionTime"] == "t2"
    custom = s.set_condition(conds, "Custom", "True", "R", "", 1, "t")
    assert [c["type"] for c in custom] == ["Available", "Custom"]


# ------------------------------------------------------------------------------------------------ history
def test_record_revision_adds_supersedes_and_keeps_the_newest() -> None:
    h = s.record_revision(None, "a", "Deploying", "pvc://e/a", "t1", 3)
    assert h == [{"revision": "a", "deployedAt": "t1", "engineUri": "pvc://e/a", "outcome": "Deploying"}]
    h = s.record_revision(h, "a", "Ready", None, "t2", 3)
    h = s.record_revision(h, "b", "Ready", None, "t3", 3)
    assert [(x["revision"], x["outcome"]) for x in h] == [("a", "Superseded"), ("b", "Ready")]
    assert "engineUri" not in h[1] and h[1]["deployedAt"] == "t3"
    same = s.record_revision(h, "b", "Ready", None, "t4", 3)
    assert same == h
    h = s.record_revision(h, "c", "RolledBack", None, "t5", 2)
    assert [x["revision"] for x in h] == ["b", "c"] and h[0]["outcome"] == "Ready"
    assert s.record_revision(h, "c", "RolledBack", None, "t6", 1) == [h[-1]]
    assert s.revision_outcome(h, "c") == "RolledBack" and s.revision_outcome(h, "z") is None
    assert s.revision_outcome(None, "a") is None


# ------------------------------------------------------------------------------------------------ more edges
def test_job_state_looks_past_false_conditions() -> None:
    assert s.job_state(job(("Failed", "False", None, None), ("Complete", "True", None, None))) == "succeeded"


def test_pod_report_skips_pods_still_running_and_keeps_the_first_of_equal_pods() -> None:
    pods = [
        pod("running", created="2026-01-01T00:00:09Z"),
        pod("a", created="2026-01-01T00:00:05Z", terminated={"exitCode": 4}),
        pod("b", created="2026-01-01T00:00:05Z", terminated={"exitCode": 6}),
    ]
    report = s.pod_report(pods, "train", succeeded=False)
    assert (report.pod, report.exit_code, report.text, report.summary) == ("a", 4, None, None)


@pytest.mark.parametrize(
    "status",
    [
        {"updatedReplicas": 1, "availableReplicas": 1, "replicas": 1},  # the controller has not seen it yet
        {"observedGeneration": 1, "availableReplicas": 1, "replicas": 1},
        {"observedGeneration": 1, "updatedReplicas": 1, "replicas": 1},
    ],
)
def test_a_deployment_missing_a_counter_is_not_rolled_out(status: dict[str, Any]) -> None:
    dep = {"metadata": {"name": "d", "generation": 1}, "spec": {"replicas": 1}, "status": status}
    assert s.rolled_out(dep) is False


def test_merge_diff_of_a_section_that_was_not_an_object() -> None:
    assert s.merge_diff(None, {"a": 1}) == {"a": 1}
    assert s.merge_diff({"a": "x"}, {"a": {"b": 1, "c": None}}) == {"a": {"b": 1, "c": None}}


def test_condition_messages_say_what_happened() -> None:
    b = s.StatusBuilder({}, 1, now="t")
    b.running("Training")
    b.finish("Ready", "training revision a")
    c = conditions(b.patch())
    assert c["Progressing"]["message"] == "training revision a" and c["Degraded"]["message"] == ""
    failed = s.StatusBuilder({}, 1, now="t")
    failed.fail("TrainingFailed", "exit code 9")
    failed.finish("Ready", "")
    c = conditions(failed.patch())
    assert c["Progressing"]["message"] == c["Degraded"]["message"] == "exit code 9"
    kept = s.StatusBuilder({}, 1, now="t")
    kept.keep_degraded("RolledBack", "revision b rolled back")
    kept.finish("Ready", "serving a")
    assert conditions(kept.patch())["Degraded"]["message"] == "revision b rolled back"
    assert s.StatusBuilder({"model": {"accuracy": 0.97}}, 1).section("model") == {"accuracy": 0.97}
