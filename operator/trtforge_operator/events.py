"""Kubernetes Events for a ModelDeployment's stage changes and failures.

Events are derived from condition transitions (old status vs new status), so a reconcile that changes
nothing posts nothing and a restarted operator does not repeat them. Posting is best effort: an Event
that cannot be written is logged, never fails a reconcile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from trtforge_runtime.artifacts import utc_now
from trtforge_runtime.spec.model import API_VERSION, KIND

from trtforge_operator.apply import Kube
from trtforge_operator.errors import KubeApiError
from trtforge_operator.status import find_condition

log = logging.getLogger(__name__)
COMPONENT = "trtforge-operator"

# (condition type, new status) -> (event type, event reason); None reason = use the condition's reason
TRANSITIONS: dict[tuple[str, str], tuple[str, str | None]] = {
    ("Trained", "Unknown"): ("Normal", "TrainingStarted"),
    ("Trained", "True"): ("Normal", "Trained"),
    ("Trained", "False"): ("Warning", "TrainingFailed"),
    ("EngineBuilt", "Unknown"): ("Normal", "ConversionStarted"),
    ("EngineBuilt", "True"): ("Normal", "EngineBuilt"),
    ("EngineBuilt", "False"): ("Warning", "ConversionFailed"),
    ("Available", "True"): ("Normal", "Available"),
    ("Available", "False"): ("Warning", "Unavailable"),
    ("Degraded", "True"): ("Warning", None),
}


def transitions(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(event type, reason, message) for every condition whose status or reason changed.

    One Event per fact: a stage failure also sets Degraded with the same message, which would repeat
    the stage's Warning word for word, so an Event whose type and message an earlier one of the same
    change already carries is dropped."""
    events: list[tuple[str, str, str]] = []
    for cond in new:
        key = (cond["type"], cond["status"])
        if key not in TRANSITIONS:
            continue
        before = find_condition(old, cond["type"])
        if before and before.get("status") == cond["status"] and before.get("reason") == cond.get("reason"):
            continue
        if before is None and key == ("Available", "False"):
            continue  # not yet deployed is not news
        etype, reason = TRANSITIONS[key]
        message = cond.get("message") or ""
        if any(e[0] == etype and e[2] == message for e in events):
            continue
        events.append((etype, reason or cond.get("reason") or cond["type"], message))
    return events


def event_manifest(
    body: Mapping[str, Any],
    etype: str,
    reason: str,
    message: str,
    now: str | None = None,
    component: str = COMPONENT,
) -> dict[str, Any]:
    """A core/v1 Event about the ModelDeployment `body`, reported by `component`."""
    meta = body["metadata"]
    now = now or utc_now()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": etype,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


async def post(kube: Kube, body: dict[str, Any], etype: str, reason: str, message: str) -> None:
    try:
        await kube.create(event_manifest(body, etype, reason, message))
    except KubeApiError as exc:
        log.warning("cannot post event %s for %s: %s", reason, body["metadata"]["name"], exc)
