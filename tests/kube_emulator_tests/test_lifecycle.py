"""Deletion: finalizers, owner-reference garbage collection (background, foreground, orphan), namespaces."""

from __future__ import annotations

from typing import Any

from kube_emulator.helpers import Kube
from kubernetes import client


def _cm(name: str, owner: Any = None, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid}
        ]
    if finalizers:
        meta["finalizers"] = finalizers
    return {"metadata": meta}


def _names(core: Any) -> list[str]:
    return sorted(cm.metadata.name for cm in core.list_namespaced_config_map("default").items)


def test_finalizers_delay_deletion_until_emptied(api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", _cm("f", finalizers=["example.com/guard"]))
    core.delete_namespaced_config_map("f", "default")
    marked = core.read_namespaced_config_map("f", "default")
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.finalizers == ["example.com/guard"]
    core.patch_namespaced_config_map("f", "default", {"metadata": {"finalizers": None}})
    assert "f" not in _names(core)


def test_no_new_finalizers_on_an_object_being_deleted(api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", _cm("f", finalizers=["a/b"]))
    core.delete_namespaced_config_map("f", "default")
    try:
        core.patch_namespaced_config_map("f", "default", {"metadata": {"finalizers": ["a/b", "c/d"]}})
    except client.exceptions.ApiException as exc:
        assert exc.status == 422
    else:
        raise AssertionError("adding a finalizer during deletion must fail")


def test_background_gc_is_recursive(api: Any) -> None:
    core = client.CoreV1Api(api)
    root = core.create_namespaced_config_map("default", _cm("root"))
    mid = core.create_namespaced_config_map("default", _cm("mid", root))
    core.create_namespaced_config_map("default", _cm("leaf", mid))
    core.create_namespaced_config_map("default", _cm("bystander"))
    core.delete_namespaced_config_map("root", "default")
    assert _names(core) == ["bystander"]


def test_dependent_with_a_live_second_owner_survives(api: Any) -> None:
    core = client.CoreV1Api(api)
    a = core.create_namespaced_config_map("default", _cm("a"))
    b = core.create_namespaced_config_map("default", _cm("b"))
    dep = _cm("dep", a)
    dep["metadata"]["ownerReferences"].append(
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": b.metadata.uid}
    )
    core.create_namespaced_config_map("default", dep)
    core.delete_namespaced_config_map("a", "default")
    assert _names(core) == ["b", "dep"]


def test_orphan_propagation_keeps_dependents_without_the_reference(api: Any) -> None:
    core = client.CoreV1Api(api)
    root = core.create_namespaced_config_map("default", _cm("root"))
    core.create_namespaced_config_map("default", _cm("child", root))
    core.delete_namespaced_config_map("root", "default", propagation_policy="Orphan")
    assert _names(core) == ["child"]
    assert not core.read_namespaced_config_map("child", "default").metadata.owner_references


def test_foreground_deletion_waits_for_dependents(api: Any) -> None:
    core = client.CoreV1Api(api)
    root = core.create_namespaced_config_map("default", _cm("root"))
    core.create_namespaced_config_map("default", _cm("child", root, finalizers=["x/y"]))
    core.delete_namespaced_config_map("root", "default", propagation_policy="Foreground")
    held = core.read_namespaced_config_map("root", "default")
    assert "foregroundDeletion" in held.metadata.finalizers and held.metadata.deletion_timestamp
    core.patch_namespaced_config_map("child", "default", {"metadata": {"finalizers": None}})
    assert _names(core) == []


def test_deleting_a_namespace_deletes_its_content(kube: Kube, api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "tmp"}})
    core.create_namespaced_config_map("tmp", _cm("inside"))
    core.delete_namespace("tmp")
    assert kube.get("v1", "Namespace", "tmp") is None
    assert core.list_namespaced_config_map("tmp").items == []


def test_job_pods_are_collected_with_the_job(kube: Kube, api: Any) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(
        "default",
        {
            "metadata": {"name": "j"},
            "spec": {
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}
            },
        },
    )
    kube.complete_job("default", "j")
    assert len(kube.pods("default", "job-name=j")) == 1
    batch.delete_namespaced_job("j", "default", propagation_policy="Background")
    assert kube.pods("default", "job-name=j") == []


def test_dependents_of_a_missing_owner_are_collected(kube: Kube, api: Any) -> None:
    core = client.CoreV1Api(api)
    ghost = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "gone",
        "uid": "00000000-0000-0000-0000-000000000000",
    }
    core.create_namespaced_config_map("default", {"metadata": {"name": "stray", "ownerReferences": [ghost]}})
    kube.wait_for(
        lambda: kube.get("v1", "ConfigMap", "stray", "default") is None, 5, message="garbage collection"
    )
