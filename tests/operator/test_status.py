from __future__ import annotations

import json

from trtforge_operator import status as s
from trtforge_runtime.spec.model import ModelDeploymentStatus


def test_transition_time_moves_only_when_status_changes() -> None:
    conds = s.set_condition([], "Trained", "Unknown", "Training", "job created", 1, "t1")
    conds = s.set_condition(conds, "Trained", "Unknown", "Training", "job running", 1, "t2")
    assert conds[0]["lastTransitionTime"] == "t1" and conds[0]["message"] == "job running"
    conds = s.set_condition(conds, "Trained", "True", "Succeeded", "done", 2, "t3")
    assert conds[0]["lastTransitionTime"] == "t3" and conds[0]["observedGeneration"] == 2


def test_conditions_are_ordered_and_unique() -> None:
    conds: list[dict[str, object]] = []
    for t in ("Degraded", "Available", "Trained", "Available"):
        conds = s.set_condition(conds, t, "False", "R", "", 1, "t")
    assert [c["type"] for c in conds] == ["Trained", "Available", "Degraded"]


def test_merge_diff_is_minimal_and_deletes_with_null() -> None:
    current = {"phase": "Ready", "serving": {"desiredReplicas": 3, "replicas": 2}, "model": {"accuracy": 0.9}}
    desired = {"phase": "Ready", "serving": {"replicas": 2}, "model": {"accuracy": None, "revision": "b"}}
    assert s.merge_diff(current, desired) == {"model": {"accuracy": None, "revision": "b"}}
    assert s.merge_diff(current, {"phase": "Ready", "serving": {"replicas": 2}}) == {}


def test_builder_writes_nothing_when_nothing_changed() -> None:
    b = s.StatusBuilder({}, 1, now="t1")
    b.set("Trained", "True", "Succeeded", "ok")
    b.finish("Ready", "serving")
    first = b.patch()
    ModelDeploymentStatus.model_validate(first)  # fits the CRD's status schema
    assert first["phase"] == "Ready" and first["observedGeneration"] == 1
    again = s.StatusBuilder(json.loads(json.dumps(first)), 1, now="t2")
    again.set("Trained", "True", "Succeeded", "ok")
    again.finish("Ready", "serving")
    assert again.patch() == {}


def test_failure_sets_phase_progressing_and_degraded() -> None:
    b = s.StatusBuilder({}, 4, now="t")
    b.running("Training")
    b.fail("QualityGateFailed", "accuracy 0.5 < 0.9")
    b.finish("Ready", "")
    p = b.patch()
    assert p["phase"] == "Failed" and "0.5" in p["message"]
    conds = {c["type"]: c for c in p["conditions"]}
    assert conds["Progressing"]["status"] == "False" and conds["Degraded"]["status"] == "True"
    assert conds["Degraded"]["reason"] == "QualityGateFailed"
    assert p["reason"] == "QualityGateFailed"  # the Reason column of `kubectl get md`
    ModelDeploymentStatus.model_validate(p)
    fixed = s.StatusBuilder(json.loads(json.dumps(p)), 5, now="t2")
    fixed.running("Training")
    fixed.finish("Ready", "training")
    assert fixed.patch()["reason"] is None  # cleared (merge-patch null) once the object is no longer Failed


def test_running_stage_is_the_phase() -> None:
    b = s.StatusBuilder({}, 1, now="t")
    b.running("Converting")
    b.finish("Ready", "converting")
    assert b.patch()["phase"] == "Converting"


def test_revision_history() -> None:
    h = s.record_revision(None, "a", "Ready", "pvc://x/a", "t1", 3)
    h = s.record_revision(h, "b", "Deploying", "pvc://x/b", "t2", 3)
    h = s.record_revision(h, "b", "Ready", None, "t3", 3)
    assert [(x["revision"], x["outcome"]) for x in h] == [("a", "Superseded"), ("b", "Ready")]
    h = s.record_revision(h, "c", "RolledBack", None, "t4", 3)
    h = s.record_revision(h, "d", "Ready", None, "t5", 3)
    assert [x["revision"] for x in h] == ["b", "c", "d"]  # last N
    assert s.revision_outcome(h, "c") == "RolledBack" and s.revision_outcome(h, "zz") is None


def _pod(
    name: str, code: int, message: str | None, index: int | None = None, created: str = "2026-01-01T00:00:00Z"
):
    term = {"exitCode": code}
    if message is not None:
        term["message"] = message
    meta = {"name": name, "creationTimestamp": created}
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    return {
        "metadata": meta,
        "status": {"containerStatuses": [{"name": "main", "state": {"terminated": term}}]},
    }


def test_pod_report_reads_the_json_termination_message() -> None:
    pods = [
        _pod("p-1", 1, "Traceback ...", created="2026-01-01T00:00:01Z"),
        _pod(
            "p-2",
            4,
            json.dumps({"ok": False, "stage": "train", "error": "accuracy 0.5 < 0.9"}),
            created="2026-01-01T00:00:02Z",
        ),
    ]
    r = s.pod_report(pods, "main", succeeded=False)
    assert r.pod == "p-2" and r.exit_code == 4 and r.summary and r.summary["ok"] is False
    job = {
        "metadata": {"name": "j"},
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "PodFailurePolicy",
                    "message": "container main exited 4",
                }
            ]
        },
    }
    assert s.failure_reason(job, r) == "QualityGateFailed"
    msg = s.failure_message(job, r, "line1\nline2\nlast line")
    assert "accuracy 0.5 < 0.9" in msg and msg.endswith("last line") and "Job j failed" in msg
    ok = s.pod_report([_pod("w-1", 0, "{}", 1), _pod("w-0", 0, '{"accuracy": 0.97}', 0)], "main", True)
    assert ok.pod == "w-0" and ok.summary == {"accuracy": 0.97}  # the chief of an Indexed Job
    assert s.pod_report([], "main", True).summary is None


def test_job_and_deployment_state() -> None:
    assert s.job_state({}) == "running"
    assert s.job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == "succeeded"
    assert s.job_state({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == "failed"
    dep = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
    }
    assert s.rolled_out(dep)
    assert not s.rolled_out({**dep, "metadata": {"generation": 3}})
    assert not s.rolled_out({**dep, "status": {**dep["status"], "replicas": 3}})  # old pods still there
    stuck = {
        "status": {
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
        }
    }
    assert s.deadline_exceeded(stuck) and not s.deadline_exceeded(dep)
    assert not s.rolled_out({**dep, "status": {**dep["status"], **stuck["status"]}})
