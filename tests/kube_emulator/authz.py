"""RBAC authorization for requests made as a ServiceAccount.

A bearer token `serviceaccount:<namespace>:<name>`, or an `Impersonate-User:
system:serviceaccount:<namespace>:<name>` header (kubectl sends no bearer token over plain HTTP, so
`write_kubeconfig(..., service_account=)` sets both `token` and `as`), makes the request come from
that ServiceAccount; it is then allowed only by the
Roles/ClusterRoles bound to that account (or to its groups `system:serviceaccounts`,
`system:serviceaccounts:<namespace>`, `system:authenticated`), as the RBAC authorizer does. Any other
token is a cluster admin, so tests that do not care about RBAC never meet it. Discovery, /version,
/openapi and health endpoints are open to everyone (the default `system:discovery` bindings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kube_emulator.errors import ApiError
from kube_emulator.store import Store

TOKEN_PREFIX = "serviceaccount:"
RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class User:
    """A user that RBAC applies to: a ServiceAccount (from a token or impersonation) or a review's user."""

    username: str
    groups: frozenset[str]

    @classmethod
    def service_account(cls, namespace: str, name: str) -> User:
        groups = {"system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"}
        return cls(f"system:serviceaccount:{namespace}:{name}", frozenset(groups))

    @classmethod
    def named(cls, username: str, groups: list[str] | None = None) -> User:
        parts = username.split(":")
        if username.startswith("system:serviceaccount:") and len(parts) == 4:
            base = cls.service_account(parts[2], parts[3])
            return cls(base.username, base.groups | frozenset(groups or []))
        return cls(username, frozenset([*(groups or []), "system:authenticated"]))


def user_of(authorization: str | None, impersonate: str | None = None) -> User | None:
    """The ServiceAccount a request acts as (bearer token or `Impersonate-User` header); None for admin."""
    if impersonate:
        prefix = "system:serviceaccount:"
        parts = impersonate.removeprefix(prefix).split(":")
        if not impersonate.startswith(prefix) or len(parts) != 2:
            raise ApiError(
                403, "Forbidden", f'only ServiceAccounts can be impersonated here, not "{impersonate}"'
            )
        return User.service_account(parts[0], parts[1])
    token = (authorization or "").removeprefix("Bearer ").strip()
    if not token.startswith(TOKEN_PREFIX):
        return None
    parts = token[len(TOKEN_PREFIX) :].split(":")
    if len(parts) != 2 or not all(parts):
        raise ApiError(401, "Unauthorized", "Unauthorized")
    return User.service_account(parts[0], parts[1])


def _binds(binding: dict[str, Any], user: User) -> bool:
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        sa_name = f"system:serviceaccount:{subject.get('namespace')}:{subject.get('name')}"
        if kind == "ServiceAccount" and user.username == sa_name:
            return True
        if kind == "User" and subject.get("name") == user.username:
            return True
        if kind == "Group" and subject.get("name") in user.groups:
            return True
    return False


def _rule_allows(
    rule: dict[str, Any], verb: str, group: str, resource: str, sub: str | None, name: str | None
) -> bool:
    if not ({"*", verb} & set(rule.get("verbs") or [])):
        return False
    if not ({"*", group} & set(rule.get("apiGroups") or [])):
        return False
    wanted = f"{resource}/{sub}" if sub else resource
    resources = set(rule.get("resources") or [])
    if not ({"*", wanted} & resources or (sub and f"*/{sub}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


def _rules(store: Store, ref: dict[str, Any], namespace: str | None) -> list[dict[str, Any]]:
    if ref.get("kind") == "ClusterRole":
        role = store.get((RBAC, "clusterroles"), ("", ref.get("name", "")))
    elif ref.get("kind") == "Role" and namespace is not None:
        role = store.get((RBAC, "roles"), (namespace, ref.get("name", "")))
    else:
        role = None
    return list((role or {}).get("rules") or [])


def allowed(
    store: Store,
    user: User,
    verb: str,
    group: str,
    resource: str,
    sub: str | None,
    namespace: str | None,
    name: str | None,
) -> bool:
    for binding in store.items((RBAC, "clusterrolebindings")):
        if _binds(binding, user) and any(
            _rule_allows(r, verb, group, resource, sub, name)
            for r in _rules(store, binding.get("roleRef") or {}, None)
        ):
            return True
    if namespace is None:
        return False
    for binding in store.items((RBAC, "rolebindings"), namespace):
        if _binds(binding, user) and any(
            _rule_allows(r, verb, group, resource, sub, name)
            for r in _rules(store, binding.get("roleRef") or {}, namespace)
        ):
            return True
    return False


def forbidden(
    user: User,
    verb: str,
    group: str,
    resource: str,
    sub: str | None,
    namespace: str | None,
    name: str | None,
) -> ApiError:
    what = f"{resource}.{group}" if group else resource
    if name:
        what += f' "{name}"'
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    res = f"{resource}/{sub}" if sub else resource
    return ApiError(
        403,
        "Forbidden",
        f'{what} is forbidden: User "{user.username}" cannot {verb} resource "{res}" '
        f'in API group "{group}" {where}',
        details={"name": name, "group": group, "kind": resource}
        if name
        else {"group": group, "kind": resource},
    )


REVIEWS = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
}


def review(store: Store, plural: str, body: dict[str, Any], requester: User | None) -> dict[str, Any]:
    """Answer a (Self)SubjectAccessReview as the RBAC authorizer would (`kubectl auth can-i`)."""
    spec = body.get("spec") or {}
    if plural == "subjectaccessreviews":
        user: User | None = User.named(spec.get("user") or "", spec.get("groups"))
    else:
        user = requester
    attrs = spec.get("resourceAttributes")
    if user is None:
        status = {"allowed": True, "reason": "the emulator's admin token"}
    elif attrs is None:
        status = {"allowed": True, "reason": "non-resource URLs are open"}
    else:
        ok = allowed(
            store,
            user,
            attrs.get("verb", ""),
            attrs.get("group", ""),
            attrs.get("resource", ""),
            attrs.get("subresource") or None,
            attrs.get("namespace") or None,
            attrs.get("name") or None,
        )
        status = {"allowed": ok}
    return {**body, "metadata": body.get("metadata") or {}, "status": status}


# ------------------------------------------------------------------ protobuf access reviews

_RESOURCE_ATTRIBUTES = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def _fields(data: bytes) -> dict[int, list[Any]]:
    """A protobuf message's fields (varints as ints, length-delimited ones as bytes)."""
    out: dict[int, list[Any]] = {}
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7

    while pos < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value: Any = varint()
        elif wire == 2:
            size = varint()
            value = data[pos : pos + size]
            pos += size
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ApiError(400, "BadRequest", f"unsupported protobuf wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _strings(data: bytes, names: dict[int, str]) -> dict[str, str]:
    fields = _fields(data)
    return {name: fields[num][0].decode() for num, name in names.items() if num in fields}


def decode_review(raw: bytes) -> dict[str, Any]:
    """A (Self)SubjectAccessReview sent as protobuf (client-go's typed clients, `kubectl auth can-i`).

    The envelope is `k8s\\0` + runtime.Unknown{typeMeta=1{apiVersion=1, kind=2}, raw=2}; the review is
    {metadata=1, spec=2{resourceAttributes=1, nonResourceAttributes=2, user=3, groups=4}}.
    """
    if not raw.startswith(b"k8s\x00"):
        raise ApiError(400, "BadRequest", "not a Kubernetes protobuf envelope")
    unknown = _fields(raw[4:])
    type_meta = _strings(unknown.get(1, [b""])[0], {1: "apiVersion", 2: "kind"})
    review = _fields(unknown.get(2, [b""])[0])
    spec_fields = _fields(review.get(2, [b""])[0])
    spec: dict[str, Any] = {}
    if 1 in spec_fields:
        spec["resourceAttributes"] = _strings(spec_fields[1][0], _RESOURCE_ATTRIBUTES)
    if 2 in spec_fields:
        spec["nonResourceAttributes"] = _strings(spec_fields[2][0], _NON_RESOURCE_ATTRIBUTES)
    if 3 in spec_fields:
        spec["user"] = spec_fields[3][0].decode()
    if 4 in spec_fields:
        spec["groups"] = [g.decode() for g in spec_fields[4]]
    return {**type_meta, "metadata": {}, "spec": spec}
