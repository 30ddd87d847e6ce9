"""Watch streams: resume from a resourceVersion, bookmarks, selectors, timeouts, 410 Gone."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from kube_emulator.emulator import Emulator
from kube_emulator.helpers import Kube
from kubernetes import client, watch


def _stream(
    kube: Kube, query: str, path: str = "/api/v1/namespaces/default/configmaps"
) -> list[dict[str, Any]]:
    """Read a watch stream until the server closes it (queries here set timeoutSeconds)."""
    with urllib.request.urlopen(f"{kube.url}{path}?watch=true&{query}", timeout=10) as rsp:
        return [json.loads(line) for line in rsp.read().splitlines() if line.strip()]


def test_resume_from_resource_version_replays_only_later_events(kube: Kube, api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    core.patch_namespaced_config_map("after", "default", {"data": {"a": "1"}})
    core.delete_namespaced_config_map("before", "default")
    events = _stream(kube, f"resourceVersion={rv}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "before"),
    ]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_without_resource_version_lists_current_state_first(kube: Kube, api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    events = _stream(kube, "timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "x")]


def test_send_initial_events_ends_with_bookmark(kube: Kube, api: Any) -> None:
    client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    events = _stream(
        kube,
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
    )
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_bookmarks_carry_the_current_resource_version(kube: Kube, api: Any) -> None:
    kube.thread.server.bookmark_interval = 0.2  # type: ignore[union-attr]
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_secret("default", {"metadata": {"name": "elsewhere"}})
    events = _stream(kube, f"resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1")
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) > int(rv)


def test_selector_transitions_become_added_and_deleted(kube: Kube, api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "m", "labels": {"app": "a"}}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("m", "default", {"metadata": {"labels": {"app": "b"}}})
    core.patch_namespaced_config_map("m", "default", {"metadata": {"labels": {"app": "a"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "other", "labels": {"app": "b"}}})
    events = _stream(kube, f"resourceVersion={rv}&labelSelector=app%3Da&timeoutSeconds=1")
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]
    by_field = _stream(kube, f"resourceVersion={rv}&fieldSelector=metadata.name%3Dother&timeoutSeconds=1")
    assert [e["type"] for e in by_field] == ["ADDED"]


def test_timeout_seconds_closes_the_stream(kube: Kube) -> None:
    start = time.monotonic()
    assert _stream(kube, f"resourceVersion={kube.emulator.store.rv}&timeoutSeconds=1") == []
    # held open until the time-out (never closed early); the upper bound only guards against a hang
    assert 0.9 < time.monotonic() - start < 30


def test_too_old_resource_version_is_410_gone(kube: Kube) -> None:
    def shrink(emu: Emulator) -> int:
        emu.store.history_size = 2
        return emu.store.rv

    rv = kube.call(shrink)
    for i in range(4):
        kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
    events = _stream(kube, f"resourceVersion={rv}&timeoutSeconds=1")
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


def test_live_events_reach_the_python_client_watch(kube: Kube, api: Any) -> None:
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=3
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.2)
    core.create_namespaced_config_map("default", {"metadata": {"name": "live"}})
    core.delete_namespaced_config_map("live", "default")
    thread.join(5)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]
