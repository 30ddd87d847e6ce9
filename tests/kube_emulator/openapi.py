"""A minimal OpenAPI v3 (`/openapi/v3`, `/openapi/v3/apis/G/V`) for kubectl.

kubectl decides from it whether a kind supports server-side field validation (the `fieldValidation`
query parameter of its PATCH operation); when it does, a plain `kubectl apply` sends
`fieldValidation=Strict` instead of downloading schemas for client-side validation. Custom
resources carry their CRD schema (so `kubectl explain` works for them); built-in kinds a permissive one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kube_emulator.resources import Registry, ResourceType


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(rtype: ResourceType) -> str:
    if not rtype.group:
        return f"io.k8s.api.core.{rtype.version}.{rtype.kind}"
    reverse = ".".join(reversed(rtype.group.split(".")))
    return f"{reverse}.{rtype.version}.{rtype.kind}"


def _params(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]


def _op(
    rtype: ResourceType,
    action: str,
    gvk: dict[str, str] | None = None,
    params: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "operationId": f"{action}{rtype.kind}",
        "parameters": _params(*params),
        "responses": {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name(rtype)}"}}
                },
            }
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk
        or {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
    }


def document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    writes = ("dryRun", "fieldManager", "fieldValidation")
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for t in types:
        base = "/" + gv_path(group, version)
        collection = f"{base}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{base}/{t.plural}"
        item = f"{collection}/{{name}}"
        paths[collection] = {
            "get": _op(
                t,
                "list",
                {"group": t.group, "version": t.version, "kind": t.list_kind},
                params=(
                    "labelSelector",
                    "fieldSelector",
                    "limit",
                    "continue",
                    "watch",
                    "resourceVersion",
                    "timeoutSeconds",
                ),
            ),
            "post": _op(t, "post", params=writes),
        }
        paths[item] = {
            "get": _op(t, "get"),
            "put": _op(t, "put", params=writes),
            "patch": _op(t, "patch", params=(*writes, "force")),
            "delete": _op(t, "delete", params=("dryRun", "propagationPolicy", "gracePeriodSeconds")),
        }
        if t.status:
            paths[f"{item}/status"] = {
                "get": _op(t, "get"),
                "put": _op(t, "put", params=writes),
                "patch": _op(t, "patch", params=(*writes, "force")),
            }
        if t.scale:
            scale = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
            paths[f"{item}/scale"] = {
                "get": _op(t, "get", scale),
                "put": _op(t, "put", scale, params=writes),
                "patch": _op(t, "patch", scale, params=(*writes, "force")),
            }
        gvk = [{"group": t.group, "version": t.version, "kind": t.kind}]
        if t.schema is not None:
            body = json.loads(json.dumps(t.schema))
            body.setdefault("properties", {})["metadata"] = {
                "type": "object",
                "description": "Standard object's metadata.",
            }
        else:
            body = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        body["x-kubernetes-group-version-kind"] = gvk
        schemas[schema_name(t)] = body
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            doc = document(registry, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            path = gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
