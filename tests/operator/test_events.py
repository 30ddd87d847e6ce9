from __future__ import annotations

from trtforge_operator import events


def test_events_follow_condition_transitions_only() -> None:
    old = [{"type": "Trained", "status": "Unknown", "reason": "Training"}]
    new = [
        {"type": "Trained", "status": "True", "reason": "Succeeded", "message": "accuracy 0.97"},
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
        {"type": "Degraded", "status": "True", "reason": "RolledBack", "message": "back to abc"},
    ]
    got = events.transitions(old, new)
    assert ("Normal", "Trained", "accuracy 0.97") in got
    assert ("Warning", "RolledBack", "back to abc") in got
    assert all(reason != "Unavailable" for _, reason, _ in got)  # never available: no news
    assert events.transitions(new, new) == []


def test_event_manifest_is_a_core_v1_event() -> None:
    body = {"metadata": {"name": "digits", "namespace": "ml", "uid": "u", "resourceVersion": "7"}}
    e = events.event_manifest(body, "Warning", "TrainingFailed", "x" * 5000, now="t")
    assert e["metadata"] == {"generateName": "digits.", "namespace": "ml"}
    assert e["involvedObject"]["kind"] == "ModelDeployment" and e["involvedObject"]["uid"] == "u"
    assert len(e["message"]) == 1024 and e["type"] == "Warning"


def test_a_stage_failure_is_one_warning_event_not_two() -> None:
    message = "Job digits-train-abc failed (PodFailurePolicy): test accuracy 0.41 is below minAccuracy 0.95"
    old = [{"type": "Trained", "status": "Unknown", "reason": "Training"}]
    new = [
        {"type": "Trained", "status": "False", "reason": "QualityGateFailed", "message": message},
        {"type": "Progressing", "status": "False", "reason": "QualityGateFailed", "message": message},
        {"type": "Degraded", "status": "True", "reason": "QualityGateFailed", "message": message},
    ]
    got = events.transitions(old, new)
    assert got == [("Warning", "TrainingFailed", message)]
