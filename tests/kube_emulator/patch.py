"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic merge patch.

Strategic merge uses the merge keys of the built-in kinds (containers/env/volumes/ports... by name,
conditions by type, ...) and honours the directives kubectl sends: `$patch: delete|replace|merge`,
`$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
"""

from __future__ import annotations

import copy
from typing import Any

from kube_emulator.errors import ApiError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class PatchError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(422, "Invalid", message)


# ---------------------------------------------------------------- JSON patch


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}: it must start with /")
    return [_unescape(t) for t in path[1:].split("/")]


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    tokens = _tokens(path)
    if not tokens:
        raise PatchError(f"cannot operate on the whole document with path {path!r}")
    cur = doc
    for tok in tokens[:-1]:
        cur = _child(cur, tok, path)
    return cur, tokens[-1]


def _child(cur: Any, tok: str, path: str) -> Any:
    if isinstance(cur, dict):
        if tok not in cur:
            raise PatchError(f"doc is missing path: {path!r}: missing value")
        return cur[tok]
    if isinstance(cur, list):
        idx = _index(cur, tok, path, allow_end=False)
        return cur[idx]
    raise PatchError(f"doc is missing path: {path!r}: not a container")


def _index(lst: list[Any], tok: str, path: str, *, allow_end: bool) -> int:
    if tok == "-" and allow_end:
        return len(lst)
    if not tok.isdigit():
        raise PatchError(f"invalid array index {tok!r} in {path!r}")
    idx = int(tok)
    if idx > len(lst) or (idx == len(lst) and not allow_end):
        raise PatchError(f"array index {idx} out of bounds in {path!r}")
    return idx


def _get(doc: Any, path: str) -> Any:
    cur = doc
    for tok in _tokens(path):
        cur = _child(cur, tok, path)
    return cur


def _add(doc: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    parent, tok = _parent(doc, path)
    if isinstance(parent, dict):
        parent[tok] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tok, path, allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parent, tok = _parent(doc, path)
    if isinstance(parent, dict):
        if tok not in parent:
            raise PatchError(f"unable to remove nonexistent key: {tok}: missing value")
        return parent.pop(tok)
    if isinstance(parent, list):
        return parent.pop(_index(parent, tok, path, allow_end=False))
    raise PatchError(f"doc is missing path: {path!r}")


def apply_json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            if path == "":
                doc = copy.deepcopy(op.get("value"))
            else:
                parent, tok = _parent(doc, path)
                if isinstance(parent, list):
                    parent[_index(parent, tok, path, allow_end=False)] = copy.deepcopy(op.get("value"))
                else:
                    parent[tok] = copy.deepcopy(op.get("value"))
        elif kind == "move":
            value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            try:
                actual = _get(doc, path)
            except PatchError:
                actual = None
            if actual != op.get("value"):
                raise PatchError(f"testing value {path} failed: {actual!r} != {op.get('value')!r}")
        else:
            raise PatchError(f"unexpected JSON patch operation {kind!r}")
    return doc


# ---------------------------------------------------------------- merge patch


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


# ---------------------------------------------------------------- strategic merge patch

# list field name -> merge key (None: a list of primitives merged as a set). Lists not named here
# are replaced atomically, as for fields without `patchStrategy: merge` in the Go types.
MERGE_KEYS: dict[str, str | None] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "finalizers": None,
}


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        # container ports merge by containerPort, service ports by port
        for item in items:
            if isinstance(item, dict):
                return "containerPort" if "containerPort" in item else "port"
        return "port"
    return MERGE_KEYS.get(field)


def apply_strategic_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    return _smp_map(copy.deepcopy(doc) if isinstance(doc, dict) else {}, patch)


def _smp_map(out: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if x not in value]
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            cur = out.get(key)
            merged = _smp_map(cur if isinstance(cur, dict) else {}, value)
            if value.get("$patch") == "delete":
                out.pop(key, None)
            else:
                out[key] = merged
        elif (isinstance(value, list) and key in MERGE_KEYS) or (key == "ports" and isinstance(value, list)):
            cur = out.get(key)
            out[key] = _smp_list(key, cur if isinstance(cur, list) else [], value)
        else:
            out[key] = copy.deepcopy(value)
    for field, order in orders.items():
        if isinstance(out.get(field), list):
            out[field] = _reorder(field, out[field], order)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _smp_list(field: str, cur: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(field, cur + patch)
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if key is None:
        if all(not isinstance(p, dict) for p in patch):
            out = list(cur)
            out.extend(p for p in patch if p not in out)
            return out
        return copy.deepcopy(patch)
    out = [copy.deepcopy(x) for x in cur]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"map {item!r} in list {field!r} is missing the merge key {key!r}")
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_smp_map({}, item))
        else:
            out[idx] = _smp_map(out[idx], item)
    return out


def _reorder(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _merge_key(field, items)

    def ident(x: Any) -> Any:
        return x.get(key) if key is not None and isinstance(x, dict) else x

    wanted = [ident(o) if isinstance(o, dict) else o for o in order]
    ranked = {w: i for i, w in enumerate(wanted) if isinstance(w, str | int | float)}
    listed = [x for x in items if ident(x) in ranked]
    rest = [x for x in items if ident(x) not in ranked]
    listed.sort(key=lambda x: ranked[ident(x)])
    return listed + rest
