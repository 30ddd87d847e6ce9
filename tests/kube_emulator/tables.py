"""Server-side `Table` output (Accept: application/json;as=Table;g=meta.k8s.io;v=v1) for `kubectl get`.

Custom resources get their CRD's additionalPrinterColumns (simple JSONPaths: fields, [n] indexes and
[?(@.key=="value")] filters); common built-in kinds get the columns kubectl users know.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kube_emulator.resources import ResourceType
from kube_emulator.selectors import selector_string

_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-$/]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.]+)\s*==\s*[\"']([^\"']*)[\"']\)\]|\['([^']+)'\]"
)


def jsonpath(obj: Any, path: str) -> Any:
    """Evaluate the simple JSONPaths used in printer columns; None when absent."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    path = path.removeprefix("$")
    cur: Any = obj
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            return None
        pos = m.end()
        field, index, fkey, fval, quoted = m.groups()
        if field is not None or quoted is not None:
            cur = cur.get(field or quoted) if isinstance(cur, dict) else None
        elif index is not None:
            cur = cur[int(index)] if isinstance(cur, list) and int(index) < len(cur) else None
        else:
            found = None
            for item in cur if isinstance(cur, list) else []:
                val: Any = item
                for part in fkey.split("."):
                    val = val.get(part) if isinstance(val, dict) else None
                if val is not None and str(val) == fval:
                    found = item
                    break
            cur = found
        if cur is None:
            return None
    return cur


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.HumanDuration."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    y = h // (24 * 365)
    if y < 8:
        return f"{y}y{(h // 24) % 365}d"
    return f"{y}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


Column = tuple[str, str, int, Callable[[dict[str, Any]], Any]]  # name, type, priority, cell


def _meta(o: dict[str, Any]) -> dict[str, Any]:
    return o.get("metadata") or {}


def _spec(o: dict[str, Any]) -> dict[str, Any]:
    return o.get("spec") or {}


def _status(o: dict[str, Any]) -> dict[str, Any]:
    return o.get("status") or {}


def _pod_status(o: dict[str, Any]) -> str:
    if _meta(o).get("deletionTimestamp"):
        return "Terminating"
    reason = _status(o).get("reason") or _status(o).get("phase") or "Unknown"
    for cs in _status(o).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            return str(state["waiting"]["reason"])
        if state.get("terminated"):
            return str(state["terminated"].get("reason") or "Completed")
    return str(reason)


def _pod_ready(o: dict[str, Any]) -> str:
    statuses = _status(o).get("containerStatuses") or []
    total = len(_spec(o).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _job_status(o: dict[str, Any]) -> str:
    for cond in _status(o).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed", "Suspended"):
            return str(cond["type"])
    return "Running"


def _job_duration(o: dict[str, Any]) -> str:
    start = _status(o).get("startTime")
    if not start:
        return ""
    end = _status(o).get("completionTime")
    t0 = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    t1 = datetime.strptime(end, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if end else datetime.now(UTC)
    return human_duration((t1 - t0).total_seconds())


def _ports(o: dict[str, Any]) -> str:
    out = []
    for p in _spec(o).get("ports") or []:
        text = f"{p.get('port')}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort"):
            text = f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        out.append(text)
    return ",".join(out) or "<none>"


def _event_age(o: dict[str, Any]) -> str:
    when = o.get("lastTimestamp") or o.get("eventTime") or _meta(o).get("creationTimestamp") or ""
    return age(when[:19] + "Z" if len(when) > 19 else when)


def _involved(o: dict[str, Any]) -> str:
    ref = o.get("involvedObject") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


_NAME: Column = ("Name", "string", 0, lambda o: _meta(o).get("name"))
_AGE: Column = ("Age", "string", 0, lambda o: age(_meta(o).get("creationTimestamp")))

BUILTIN: dict[tuple[str, str], list[Column]] = {
    ("", "pods"): [
        _NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        (
            "Restarts",
            "string",
            0,
            lambda o: str(
                sum(int(c.get("restartCount") or 0) for c in _status(o).get("containerStatuses") or [])
            ),
        ),
        _AGE,
        ("IP", "string", 1, lambda o: _status(o).get("podIP") or "<none>"),
        ("Node", "string", 1, lambda o: _spec(o).get("nodeName") or "<none>"),
    ],
    ("apps", "deployments"): [
        _NAME,
        (
            "Ready",
            "string",
            0,
            lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 0)}",
        ),
        ("Up-to-date", "integer", 0, lambda o: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o: _status(o).get("availableReplicas", 0)),
        _AGE,
        (
            "Containers",
            "string",
            1,
            lambda o: ",".join(
                c.get("name", "")
                for c in (_spec(o).get("template") or {}).get("spec", {}).get("containers", [])
            ),
        ),
        (
            "Images",
            "string",
            1,
            lambda o: ",".join(
                c.get("image", "")
                for c in (_spec(o).get("template") or {}).get("spec", {}).get("containers", [])
            ),
        ),
        ("Selector", "string", 1, lambda o: selector_string(_spec(o).get("selector"))),
    ],
    ("apps", "replicasets"): [
        _NAME,
        ("Desired", "integer", 0, lambda o: _spec(o).get("replicas", 0)),
        ("Current", "integer", 0, lambda o: _status(o).get("replicas", 0)),
        ("Ready", "integer", 0, lambda o: _status(o).get("readyReplicas", 0)),
        _AGE,
    ],
    ("batch", "jobs"): [
        _NAME,
        ("Status", "string", 0, _job_status),
        (
            "Completions",
            "string",
            0,
            lambda o: f"{_status(o).get('succeeded', 0)}/{_spec(o).get('completions', 1)}",
        ),
        ("Duration", "string", 0, _job_duration),
        _AGE,
    ],
    ("", "services"): [
        _NAME,
        ("Type", "string", 0, lambda o: _spec(o).get("type", "ClusterIP")),
        ("Cluster-IP", "string", 0, lambda o: _spec(o).get("clusterIP") or "<none>"),
        ("External-IP", "string", 0, lambda o: "<none>"),
        ("Port(s)", "string", 0, _ports),
        _AGE,
    ],
    ("", "configmaps"): [_NAME, ("Data", "integer", 0, lambda o: len(o.get("data") or {})), _AGE],
    ("", "secrets"): [
        _NAME,
        ("Type", "string", 0, lambda o: o.get("type", "Opaque")),
        ("Data", "integer", 0, lambda o: len(o.get("data") or {})),
        _AGE,
    ],
    ("", "namespaces"): [_NAME, ("Status", "string", 0, lambda o: _status(o).get("phase", "")), _AGE],
    ("", "events"): [
        ("Last Seen", "string", 0, lambda o: _event_age(o)),
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Reason", "string", 0, lambda o: o.get("reason", "")),
        ("Object", "string", 0, lambda o: _involved(o)),
        ("Message", "string", 0, lambda o: o.get("message", "")),
        ("Name", "string", 1, lambda o: _meta(o).get("name")),
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        _NAME,
        ("Created At", "date", 0, lambda o: _meta(o).get("creationTimestamp")),
    ],
}


def _crd_columns(rtype: ResourceType) -> list[Column]:
    cols: list[Column] = [_NAME]
    printer = rtype.printer_columns
    if printer is None:
        return [_NAME, _AGE]
    for col in printer:
        path, ctype = col["jsonPath"], col.get("type", "string")

        def cell(o: dict[str, Any], path: str = path, ctype: str = ctype) -> Any:
            value = jsonpath(o, path)
            if ctype == "date" and isinstance(value, str):
                return age(value)
            if isinstance(value, dict | list):
                import json

                return json.dumps(value, separators=(",", ":"))
            return value

        cols.append((col["name"], "string" if ctype == "date" else ctype, int(col.get("priority", 0)), cell))
    return cols


def to_table(rtype: ResourceType, body: dict[str, Any], include_object: str = "Metadata") -> dict[str, Any]:
    columns = _crd_columns(rtype) if rtype.crd is not None else BUILTIN.get(rtype.store_key, [_NAME, _AGE])
    items = body.get("items", [body])
    rows = []
    for obj in items:
        row: dict[str, Any] = {"cells": [fn(obj) for _, _, _, fn in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        rows.append(row)
    meta = {"resourceVersion": (body.get("metadata") or {}).get("resourceVersion", "")}
    if (body.get("metadata") or {}).get("continue"):
        meta["continue"] = body["metadata"]["continue"]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [
            {
                "name": name,
                "type": ctype,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": prio,
            }
            for name, ctype, prio, _ in columns
        ],
        "rows": rows,
    }
