"""CRD registration, discovery and schema enforcement (types, enums, bounds, patterns, required,
defaults, pruning, int-or-string, CEL rules), the scale subresource and printer columns."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_emulator.helpers import PROJECT_CRD, Kube
from kube_emulator.validation import check_crd_schema
from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]

WIDGETS: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector",
                    },
                },
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {
                        "name": "Ready",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    },
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "x-kubernetes-validations": [
                                    {"rule": "self.min <= self.max", "message": "min must be <= max"}
                                ],
                                "properties": {
                                    "size": {
                                        "type": "string",
                                        "enum": ["small", "large"],
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "self == oldSelf",
                                                "messageExpression": "'size is immutable, was ' + oldSelf",
                                            }
                                        ],
                                    },
                                    "replicas": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "maximum": 10,
                                        "default": 1,
                                    },
                                    "min": {"type": "integer", "default": 1},
                                    "max": {"type": "integer", "default": 5},
                                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                                    "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "tags": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                        "x-kubernetes-list-type": "set",
                                    },
                                    "opts": {
                                        "type": "object",
                                        "default": {},
                                        "properties": {"debug": {"type": "boolean", "default": False}},
                                    },
                                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "replicas": {"type": "integer"},
                                    "selector": {"type": "string"},
                                    "conditions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "type": {"type": "string"},
                                                "status": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def _widget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": "small", **spec},
    }


@pytest.fixture
def widgets(kube: Kube, api: Any) -> Any:
    client.ApiextensionsV1Api(api).create_custom_resource_definition(copy.deepcopy(WIDGETS))
    return client.CustomObjectsApi(api)


def _invalid(co: Any, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ApiException) as info:
        co.create_namespaced_custom_object("example.com", "v1", "default", "widgets", body)
    assert info.value.status == 422, info.value.body
    status = json.loads(info.value.body)
    assert status["reason"] == "Invalid"
    return status  # type: ignore[no-any-return]


def test_crd_becomes_served_and_discoverable(kube: Kube, api: Any, widgets: Any) -> None:
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("widgets.example.com")
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"
    resources = client.CustomObjectsApi(api).get_api_resources("example.com", "v1")
    names = {r.name: r for r in resources.resources}
    assert names["widgets"].short_names == ["wd"] and "widgets/status" in names and "widgets/scale" in names
    groups = [g.name for g in client.ApisApi(api).get_api_versions().groups]
    assert "example.com" in groups and "trtforge.dev" in groups
    made = widgets.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget())
    assert made["metadata"]["generation"] == 1  # a body, so the create answered 201
    client.ApiextensionsV1Api(api).delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as info:
        widgets.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert info.value.status == 404


def test_defaults_and_pruning(widgets: Any) -> None:
    made = widgets.create_namespaced_custom_object(
        "example.com",
        "v1",
        "default",
        "widgets",
        _widget(unknown=1, free={"any": {"thing": 1}}, opts={"extra": True}),
    )
    spec = made["spec"]
    assert spec["replicas"] == 1 and spec["min"] == 1 and spec["max"] == 5
    assert spec["opts"] == {"debug": False}
    assert "unknown" not in spec and spec["free"] == {"any": {"thing": 1}}
    made2 = widgets.create_namespaced_custom_object(
        "example.com", "v1", "default", "widgets", {**_widget(), "metadata": {"name": "w2"}, "junk": 1}
    )
    assert "junk" not in made2


def test_types_enums_bounds_patterns_required(widgets: Any) -> None:
    cases = {
        "spec.size": _widget(size="medium"),
        "spec.replicas": _widget(replicas=11),
        "spec.name": _widget(name="ABC"),
        "spec.ratio": _widget(ratio=0),
        "spec.tags[1]": _widget(tags=["a", "a"]),
    }
    for field, body in cases.items():
        status = _invalid(widgets, body)
        assert status["details"]["causes"][0]["field"] == field, status
    status = _invalid(widgets, _widget(replicas="three"))
    assert "must be of type integer" in status["message"]
    status = _invalid(
        widgets, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    )
    assert status["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.size",
    }
    status = _invalid(widgets, _widget(size="medium"))
    assert 'Unsupported value: "medium": supported values: "small", "large"' in status["message"]
    assert status["message"].startswith('Widget.example.com "w" is invalid: spec.size')


def test_int_or_string(widgets: Any) -> None:
    widgets.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget(port=80))
    body = _widget(port="http")
    body["metadata"]["name"] = "w2"
    widgets.create_namespaced_custom_object("example.com", "v1", "default", "widgets", body)
    _invalid(widgets, {**_widget(port=1.5), "metadata": {"name": "w3"}})


def test_cel_rule_violation_names_the_field_and_message(widgets: Any) -> None:
    status = _invalid(widgets, _widget(min=6))
    assert status["details"]["causes"][0]["field"] == "spec"
    assert (
        status["message"]
        == 'Widget.example.com "w" is invalid: spec: Invalid value: "object": min must be <= max'
    )


def test_validation_applies_to_updates_and_status(widgets: Any) -> None:
    widgets.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget())
    with pytest.raises(ApiException) as info:
        widgets.patch_namespaced_custom_object(
            "example.com", "v1", "default", "widgets", "w", {"spec": {"max": 0}}
        )
    assert info.value.status == 422
    with pytest.raises(ApiException) as info:
        widgets.patch_namespaced_custom_object_status(
            "example.com", "v1", "default", "widgets", "w", {"status": {"replicas": "x"}}
        )
    assert info.value.status == 422


def test_custom_resource_put_requires_resource_version(widgets: Any) -> None:
    made = widgets.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget())
    del made["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as info:
        widgets.replace_namespaced_custom_object("example.com", "v1", "default", "widgets", "w", made)
    assert info.value.status == 422


def test_scale_subresource_of_a_custom_resource(widgets: Any) -> None:
    widgets.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget(replicas=2))
    widgets.patch_namespaced_custom_object_status(
        "example.com", "v1", "default", "widgets", "w", {"status": {"replicas": 2, "selector": "app=w"}}
    )
    scale = widgets.get_namespaced_custom_object_scale("example.com", "v1", "default", "widgets", "w")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2} and scale["status"] == {"replicas": 2, "selector": "app=w"}
    widgets.patch_namespaced_custom_object_scale(
        "example.com", "v1", "default", "widgets", "w", {"spec": {"replicas": 4}}
    )
    obj = widgets.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w")
    assert obj["spec"]["replicas"] == 4 and obj["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as info:  # the schema's maximum applies through /scale too
        widgets.patch_namespaced_custom_object_scale(
            "example.com", "v1", "default", "widgets", "w", {"spec": {"replicas": 11}}
        )
    assert info.value.status == 422


def test_scale_subresource_of_a_deployment(api: Any) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    scale = apps.read_namespaced_deployment_scale("d", "default")
    assert scale.spec.replicas == 1 and scale.status.selector == "app=d"
    apps.patch_namespaced_deployment_scale("d", "default", {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("d", "default").spec.replicas == 3
    scale = apps.read_namespaced_deployment_scale("d", "default")
    scale.spec.replicas = 5
    apps.replace_namespaced_deployment_scale("d", "default", scale)
    assert apps.read_namespaced_deployment("d", "default").spec.replicas == 5


def test_project_crd_accepts_the_example_and_fills_defaults(kube: Kube, api: Any) -> None:
    md = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    made = client.CustomObjectsApi(api).create_namespaced_custom_object(
        "trtforge.dev", "v1alpha1", "default", "modeldeployments", md
    )
    assert made["spec"]["serving"]["replicas"] == 1  # a schema default
    assert made["spec"]["serving"]["autoscaling"]["stableWindowSeconds"] == 60
    assert "rollout" not in made["spec"]["serving"]  # no default for the object: nothing inside is defaulted


def test_project_crd_cel_rules_are_enforced(kube: Kube, api: Any) -> None:
    md = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    md["spec"]["model"]["source"] = {"uri": "s3://bucket/model.onnx", "format": "onnx"}
    with pytest.raises(ApiException) as info:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "trtforge.dev", "v1alpha1", "default", "modeldeployments", md
        )
    assert info.value.status == 422
    assert (
        'spec.model: Invalid value: "object": exactly one of train or source must be set'
        in json.loads(info.value.body)["message"]
    )
    md = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    md["spec"]["engine"]["batch"] = {"min": 8, "opt": 4, "max": 16}
    with pytest.raises(ApiException) as info:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "trtforge.dev", "v1alpha1", "default", "modeldeployments", md
        )
    causes = json.loads(info.value.body)["details"]["causes"]
    assert causes[0]["field"] == "spec.engine.batch" and "min <= opt <= max" in causes[0]["message"]


def test_crd_schemas_are_checked_like_the_api_server(kube: Kube) -> None:
    bad = copy.deepcopy(WIDGETS)
    props = bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    props["ratio"]["exclusiveMinimum"] = 0.0  # JSON-Schema-2020 style: the API server cannot decode it
    props["size"]["x-kubernetes-validations"] = [{"rule": "self.size(", "message": "broken"}]
    # raw HTTP, as kubectl sends it (the python client's own models already refuse a numeric bound)
    request = urllib.request.Request(
        f"{kube.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        data=json.dumps(bad).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 422
    body = info.value.read().decode()
    assert "exclusiveMinimum" in body and "compilation failed" in body


def test_project_crd_decodes_like_the_api_server_would() -> None:
    crd = yaml.safe_load(PROJECT_CRD.read_text())
    for version in crd["spec"]["versions"]:
        assert check_crd_schema(version["schema"]["openAPIV3Schema"]) == []


def test_transition_rules_and_message_expressions(widgets: Any) -> None:
    widgets.create_namespaced_custom_object(
        "example.com", "v1", "default", "widgets", _widget()
    )  # no oldSelf yet
    with pytest.raises(ApiException) as info:
        widgets.patch_namespaced_custom_object(
            "example.com", "v1", "default", "widgets", "w", {"spec": {"size": "large"}}
        )
    cause = json.loads(info.value.body)["details"]["causes"][0]
    assert (
        cause["field"] == "spec.size"
        and cause["message"] == 'Invalid value: "large": size is immutable, was small'
    )
