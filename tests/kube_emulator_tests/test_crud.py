"""CRUD through the official `kubernetes` client: codes, Status bodies, metadata, conflicts, patches."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kube_emulator.helpers import Kube
from kubernetes import client
from kubernetes.client.exceptions import ApiException


def _status(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def test_create_returns_201_with_server_metadata(api: Any) -> None:
    core = client.CoreV1Api(api)
    data, code, _ = core.create_namespaced_config_map_with_http_info(
        "default", {"metadata": {"name": "one"}, "data": {"a": "1"}}
    )
    assert code == 201
    meta = data.metadata
    assert meta.uid and meta.creation_timestamp is not None and int(meta.resource_version) > 0
    second = core.create_namespaced_config_map("default", {"metadata": {"name": "two"}})
    assert int(second.metadata.resource_version) > int(meta.resource_version)  # one global counter


def test_generate_name(api: Any) -> None:
    core = client.CoreV1Api(api)
    made = core.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == len("gen-") + 5


def test_already_exists_and_not_found_status_bodies(api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    assert info.value.status == 409
    body = _status(info.value)
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "dup" already exists'
    with pytest.raises(ApiException) as info:
        client.BatchV1Api(api).read_namespaced_job("nope", "default")
    assert info.value.status == 404
    assert _status(info.value)["message"] == 'jobs.batch "nope" not found'
    assert _status(info.value)["details"] == {"name": "nope", "group": "batch", "kind": "jobs"}


def test_namespace_must_exist(api: Any) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("missing", {"metadata": {"name": "x"}})
    assert info.value.status == 404 and _status(info.value)["message"] == 'namespaces "missing" not found'
    core.create_namespace({"metadata": {"name": "missing"}})
    core.create_namespaced_config_map("missing", {"metadata": {"name": "x"}})


def test_invalid_names_and_labels_are_refused(api: Any) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert info.value.status == 422 and "metadata.name" in info.value.body
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service(
            "default", {"metadata": {"name": "s" * 64}, "spec": {"ports": [{"port": 1}]}}
        )
    assert info.value.status == 422
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", {"metadata": {"name": "l", "labels": {"a": "x" * 64}}})
    assert info.value.status == 422 and "metadata.labels" in info.value.body


def test_stale_resource_version_conflicts(api: Any) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "rv"}, "data": {"a": "1"}})
    stale = cm.metadata.resource_version
    core.patch_namespaced_config_map("rv", "default", {"data": {"a": "2"}})
    cm.data = {"a": "3"}
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("rv", "default", cm)
    assert info.value.status == 409 and _status(info.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as info:
        core.patch_namespaced_config_map(
            "rv", "default", {"metadata": {"resourceVersion": stale}, "data": {"a": "4"}}
        )
    assert info.value.status == 409
    fresh = core.read_namespaced_config_map("rv", "default")
    fresh.data = {"a": "5"}
    assert core.replace_namespaced_config_map("rv", "default", fresh).data == {"a": "5"}


def test_json_patch_test_failure_is_422(api: Any) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "jp"}, "data": {"a": "1"}})
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "replace", "path": "/data/a", "value": "2"},
    ]
    with pytest.raises(ApiException) as info:
        core.patch_namespaced_config_map("jp", "default", ops)
    assert info.value.status == 422
    ops[0]["value"] = cm.metadata.resource_version
    assert core.patch_namespaced_config_map("jp", "default", ops).data == {"a": "2"}


def test_noop_write_keeps_resource_version(api: Any) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "noop"}, "data": {"a": "1"}})
    same = core.patch_namespaced_config_map("noop", "default", {"data": {"a": "1"}})
    assert same.metadata.resource_version == cm.metadata.resource_version


def test_status_subresource_and_generation(api: Any) -> None:
    apps = client.AppsV1Api(api)
    dep = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]},
            },
        },
        "status": {"replicas": 99},
    }
    made = apps.create_namespaced_deployment("default", dep)
    assert made.metadata.generation == 1 and not (made.status and made.status.replicas)
    # a main-resource write ignores status
    patched = apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 5}})
    assert not patched.status.replicas and patched.metadata.generation == 1
    # a status write changes only status, and does not bump generation
    st = apps.patch_namespaced_deployment_status(
        "web", "default", {"status": {"replicas": 3}, "spec": {"replicas": 7}}
    )
    assert st.status.replicas == 3 and st.spec.replicas == 1 and st.metadata.generation == 1
    # a spec change bumps generation; a metadata-only change does not
    assert (
        apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}}).metadata.generation == 2
    )
    labelled = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 2


def test_strategic_merge_patch_merges_lists_by_key(api: Any) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "smp"},
            "spec": {
                "selector": {"matchLabels": {"app": "smp"}},
                "template": {
                    "metadata": {"labels": {"app": "smp"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "a",
                                "image": "a:1",
                                "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                                "ports": [{"containerPort": 80}],
                            },
                            {"name": "b", "image": "b:1"},
                        ]
                    },
                },
            },
        },
    )
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "a",
                            "image": "a:2",
                            "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}],
                        },
                        {"name": "b", "$patch": "delete"},
                    ]
                }
            }
        }
    }
    out = apps.patch_namespaced_deployment("smp", "default", patch)  # the client sends strategic merge
    containers = out.spec.template.spec.containers
    assert [c.name for c in containers] == ["a"]
    assert containers[0].image == "a:2"
    assert {e.name: e.value for e in containers[0].env} == {"X": "1", "Y": "3", "Z": "4"}
    assert containers[0].ports[0].container_port == 80


def test_strategic_merge_is_refused_for_custom_resources(kube: Kube, api: Any) -> None:
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        "default",
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "p"}},
    )
    request = urllib.request.Request(
        f"{kube.url}/apis/kopf.dev/v1/namespaces/default/kopfpeerings/p",
        method="PATCH",
        data=json.dumps({"status": {"x": 1}}).encode(),
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 415


def test_label_and_field_selectors(api: Any) -> None:
    core = client.CoreV1Api(api)
    for name, labels in [
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "db", "env": "prod"}),
        ("c", {"tier": "web"}),
    ]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    def names(**kw: str) -> list[str]:
        return sorted(cm.metadata.name for cm in core.list_namespaced_config_map("default", **kw).items)

    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier!=web") == ["b"]
    assert names(label_selector="tier in (web,db),env") == ["a", "b"]
    assert names(label_selector="tier notin (db)") == ["a", "c"]
    assert names(label_selector="!env") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="tier=web") == ["a", "c"]
    with pytest.raises(ApiException) as info:
        core.list_namespaced_config_map("default", field_selector="data.x=1")
    assert info.value.status == 400


def test_pod_phase_field_selector(kube: Kube, api: Any) -> None:
    core = client.CoreV1Api(api)
    spec = {"containers": [{"name": "c", "image": "i"}]}
    core.create_namespaced_pod("default", {"metadata": {"name": "p1"}, "spec": spec})
    core.create_namespaced_pod("default", {"metadata": {"name": "p2"}, "spec": spec})
    core.patch_namespaced_pod_status("p2", "default", {"status": {"phase": "Running"}})
    running = core.list_namespaced_pod("default", field_selector="status.phase=Running").items
    assert [p.metadata.name for p in running] == ["p2"]
    assert [
        p.metadata.name
        for p in core.list_pod_for_all_namespaces(
            field_selector="status.phase=Pending,metadata.namespace=default"
        ).items
    ] == ["p1"]


def test_list_has_kind_api_version_resource_version_and_pages(api: Any) -> None:
    core = client.CoreV1Api(api)
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"p{i}"}})
    raw = json.loads(core.list_namespaced_config_map("default", limit=2, _preload_content=False).data)
    assert raw["kind"] == "ConfigMapList" and raw["apiVersion"] == "v1" and raw["metadata"]["resourceVersion"]
    seen = [i["metadata"]["name"] for i in raw["items"]]
    token = raw["metadata"]["continue"]
    while token:
        page = core.list_namespaced_config_map("default", limit=2, _continue=token)
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
    assert seen == [f"p{i}" for i in range(5)]


def test_put_and_dry_run(api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "dr"}, "data": {"a": "1"}}, dry_run="All"
    )
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dr", "default")
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "dr"}, "data": {"a": "1"}})
    cm.data = {"b": "2"}
    assert core.replace_namespaced_config_map("dr", "default", cm).data == {"b": "2"}


def test_job_defaults_and_immutable_template(api: Any) -> None:
    batch = client.BatchV1Api(api)
    job = batch.create_namespaced_job(
        "default",
        {
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i:1"}]}
                }
            },
        },
    )
    assert job.spec.backoff_limit == 6 and job.spec.completions == 1
    uid = job.metadata.uid
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert job.spec.template.metadata.labels["job-name"] == "j"
    with pytest.raises(ApiException) as info:
        batch.patch_namespaced_job(
            "j", "default", {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i:2"}]}}}}
        )
    assert info.value.status == 422 and "field is immutable" in info.value.body
    with pytest.raises(ApiException) as info:
        batch.create_namespaced_job(
            "default",
            {
                "metadata": {"name": "j2"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i:1"}]}}},
            },
        )
    assert info.value.status == 422 and "restartPolicy" in info.value.body


def test_deployment_selector_must_match_template(api: Any) -> None:
    with pytest.raises(ApiException) as info:
        client.AppsV1Api(api).create_namespaced_deployment(
            "default",
            {
                "metadata": {"name": "bad"},
                "spec": {
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": {
                        "metadata": {"labels": {"app": "y"}},
                        "spec": {"containers": [{"name": "c", "image": "i"}]},
                    },
                },
            },
        )
    assert info.value.status == 422 and "selector" in info.value.body
