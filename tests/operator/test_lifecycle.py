"""The operator's object cache: what the watches keep for the built-in autoscaler."""

from __future__ import annotations

from typing import Any

from trtforge_operator import labels
from trtforge_operator.lifecycle import ObjectCache


def pod(name: str, component: str = "predictor", owner: str = "digits") -> dict[str, Any]:
    pod_labels = labels.common(owner, component)
    return {
        "metadata": {"name": name, "namespace": "ml", "labels": pod_labels},
        "status": {"phase": "Running"},
    }


def test_serving_pods_follow_their_watch_events() -> None:
    cache = ObjectCache()
    cache.observe_pod(None, pod("p0"))  # listed when the watch starts
    cache.observe_pod("ADDED", pod("p1"))
    cache.observe_pod("ADDED", pod("train-x", component="train"))  # a stage's pod: not a serving pod
    cache.observe_pod("ADDED", pod("q0", owner="other"))
    assert sorted(cache.serving_pods[("ml", "digits")]) == ["p0", "p1"]
    assert sorted(cache.serving_pods[("ml", "other")]) == ["q0"]

    changed = pod("p1")
    changed["status"]["podIP"] = "10.0.0.7"
    cache.observe_pod("MODIFIED", changed)
    assert cache.serving_pods[("ml", "digits")]["p1"]["status"]["podIP"] == "10.0.0.7"

    cache.observe_pod("DELETED", pod("p0"))
    cache.observe_pod("DELETED", pod("p1"))
    cache.observe_pod("DELETED", pod("never-seen"))
    assert ("ml", "digits") not in cache.serving_pods  # nothing left for a ModelDeployment: no entry
