"""The operator's one I/O layer towards the Kubernetes API: read, create, patch or leave alone.

`Kube` is a thin async wrapper over the official `kubernetes` client (its blocking calls run in threads
via `asyncio.to_thread`); it speaks plain JSON dicts so that desired manifests and observed objects compare
directly. `ensure` makes one child match its desired manifest:

- absent                -> create (409 AlreadyExists -> read it from the API and continue: `existing`
                           may come from a watch cache that has not seen it yet);
- present, not ours     -> `ChildConflictError` (never adopt or overwrite a foreign object);
- present, matching     -> leave alone (no write: reconciling is idempotent and cheap);
- present, different    -> JSON merge patch of the desired manifest, with explicit nulls for the fields
                           the previous desired manifest set and this one does not (three-way, like
                           `kubectl apply`; the previous one is kept in an annotation).
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
from collections.abc import Iterable
from typing import Any

from trtforge_runtime.spec.model import API_VERSION, KIND, PLURAL

from trtforge_operator.errors import ChildConflictError, KubeApiError

LAST_APPLIED = "trtforge.dev/last-applied"
MERGE_PATCH = "application/merge-patch+json"

# (apiVersion, kind) -> (path prefix, plural)
RESOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "Pod"): ("/api/v1", "pods"),
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("v1", "PersistentVolumeClaim"): ("/api/v1", "persistentvolumeclaims"),
    ("v1", "Event"): ("/api/v1", "events"),
    ("batch/v1", "Job"): ("/apis/batch/v1", "jobs"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets"),
    ("coordination.k8s.io/v1", "Lease"): ("/apis/coordination.k8s.io/v1", "leases"),
    (API_VERSION, KIND): (f"/apis/{API_VERSION}", PLURAL),
    # the autoscaling modes' children (hpa, keda: a KEDA ScaledObject)
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    ("keda.sh/v1alpha1", "ScaledObject"): ("/apis/keda.sh/v1alpha1", "scaledobjects"),
}
RESOURCE_QUANTITY_KEYS = {"cpu", "memory", "nvidia.com/gpu", "ephemeral-storage"}


class Action(enum.Enum):
    CREATED = "created"
    PATCHED = "patched"
    UNCHANGED = "unchanged"


def _path(api_version: str, kind: str, namespace: str | None, name: str | None = None, sub: str = "") -> str:
    prefix, plural = RESOURCES[(api_version, kind)]
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


class Kube:
    """Async JSON access to the API server through a configured `kubernetes.client.ApiClient`."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client
        self.requests = 0

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service account, else the kubeconfig named by $KUBECONFIG (read now, not at import)."""
        from kubernetes import client, config

        cfg = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            config.load_kube_config(
                config_file=os.environ.get("KUBECONFIG") or None, client_configuration=cfg
            )
        cfg.connection_pool_maxsize = 32
        return cls(client.ApiClient(cfg))

    def close(self) -> None:
        self.api.close()

    # ------------------------------------------------------------------ raw
    def _request_sync(
        self, method: str, path: str, query: dict[str, Any] | None, body: Any, content_type: str | None
    ) -> tuple[int, bytes]:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            method, url, headers, serialized, _ = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            resp = self.api.call_api(method, url, header_params=headers, body=serialized, _request_timeout=30)
            data = resp.read()
        except ApiException as exc:
            text = exc.body if isinstance(exc.body, bytes) else str(exc.body or exc.reason).encode()
            return int(exc.status or 0), text
        return int(resp.status), data or b""

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        ok: Iterable[int] = (),
    ) -> tuple[int, Any]:
        """(status, parsed JSON or text); raises KubeApiError for statuses >= 400 not listed in `ok`."""
        self.requests += 1
        status, data = await asyncio.to_thread(self._request_sync, method, path, query, body, content_type)
        try:
            parsed: Any = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode(errors="replace")
        if status >= 400 and status not in ok:
            message = parsed.get("message", "") if isinstance(parsed, dict) else str(parsed)[:300]
            raise KubeApiError(status, f"{method} {path}: {message}")
        return status, parsed

    # ------------------------------------------------------------------ typed helpers
    async def get(
        self, api_version: str, kind: str, namespace: str, name: str, *, confirm_miss: bool = False
    ) -> dict[str, Any] | None:
        """The object or None; `confirm_miss`: where a cache answers (`cache.CachedKube`), an absent
        object is asked of the API (here every read is the API's)."""
        status, obj = await self.request("GET", _path(api_version, kind, namespace, name), ok=(404,))
        return None if status == 404 else obj

    async def get_live(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Read from the API server even where `get` answers from a cache (`cache.CachedKube`)."""
        return await Kube.get(self, api_version, kind, namespace, name)

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        label_selector: str | None = None,
        *,
        cached: bool = False,
    ) -> list[dict[str, Any]]:
        """The objects of a kind in a namespace; `cached`: a watch cache may answer even for a kind
        whose reads are otherwise the API's (`cache.CachedKube`; here every read is the API's)."""
        query = {"labelSelector": label_selector} if label_selector else None
        _, obj = await self.request("GET", _path(api_version, kind, namespace), query=query)
        return list((obj or {}).get("items") or [])

    async def create(self, manifest: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meta = manifest["metadata"]
        path = _path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"))
        status, obj = await self.request("POST", path, body=manifest, ok=(409,))
        return status, obj

    async def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any], sub: str = ""
    ) -> dict[str, Any]:
        path = _path(api_version, kind, namespace, name, sub)
        _, obj = await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        return dict(obj or {})

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        status, _ = await self.request(
            "DELETE", _path(api_version, kind, namespace, name), body=body, ok=(404,)
        )
        return status != 404

    async def pod_log(self, namespace: str, pod: str, container: str, tail_lines: int) -> str | None:
        """The last lines of a container's log, or None when the API cannot give them."""
        query = {"container": container, "tailLines": tail_lines}
        try:
            status, data = await self.request(
                "GET", _path("v1", "Pod", namespace, pod, "log"), query=query, ok=(400, 404)
            )
        except KubeApiError:
            return None
        if status >= 400 or data is None:
            return None
        return data if isinstance(data, str) else json.dumps(data)


# ---------------------------------------------------------------------- comparing and patching


def _scalar_equal(key: str, want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        return False
    if isinstance(want, str | int | float) and isinstance(have, str | int | float):
        if str(want) == str(have):
            return True
        if key in RESOURCE_QUANTITY_KEYS:
            from kubernetes.utils import parse_quantity

            try:
                return bool(parse_quantity(want) == parse_quantity(have))
            except ValueError:
                return False
    return False


def is_subset(want: Any, have: Any, key: str = "") -> bool:
    """True when every field of `want` has the same value in `have` (extra fields in `have` are ignored)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        return all(k in have and is_subset(v, have[k], k) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        return all(is_subset(w, h, key) for w, h in zip(want, have, strict=True))
    return _scalar_equal(key, want, have)


def three_way_patch(
    previous: dict[str, Any] | None, desired: dict[str, Any], keep: Iterable[tuple[str, ...]] = ()
) -> dict[str, Any]:
    """The desired manifest as a merge patch, with None for fields `previous` set and `desired` dropped.

    Paths in `keep` are never nulled (fields another controller owns, such as an autoscaled
    Deployment's spec.replicas).
    """
    keep_set = {tuple(k) for k in keep}

    def walk(prev: Any, want: dict[str, Any], at: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in want.items():
            p = prev.get(k) if isinstance(prev, dict) else None
            out[k] = walk(p, v, (*at, k)) if isinstance(v, dict) and isinstance(p, dict) else v
        if isinstance(prev, dict):
            for k in prev:
                if k not in want and (*at, k) not in keep_set:
                    out[k] = None
        return out

    return walk(previous, desired, ())


def owned_by(obj: dict[str, Any], owner_uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid for r in refs)


MISSING: Any = object()  # `ensure(existing=...)` left out: read it from the API


async def ensure(
    kube: Kube,
    desired: dict[str, Any],
    *,
    owner_uid: str,
    existing: dict[str, Any] | None = MISSING,
    immutable: bool = False,
    keep: Iterable[tuple[str, ...]] = (),
) -> tuple[Action, dict[str, Any]]:
    """Make the object described by `desired` exist and match it; see the module docstring."""
    api_version, kind = desired["apiVersion"], desired["kind"]
    meta = desired["metadata"]
    ns, name = meta["namespace"], meta["name"]
    if existing is MISSING:
        existing = await kube.get(api_version, kind, ns, name)
    if existing is None:
        body = json.loads(json.dumps(desired))
        body["metadata"].setdefault("annotations", {})[LAST_APPLIED] = _applied_json(desired)
        status, obj = await kube.create(body)
        if status != 409:
            return Action.CREATED, obj
        existing = await kube.get_live(api_version, kind, ns, name)  # a cache may not have it yet
        if existing is None:  # deleted in between: the next reconcile creates it
            raise KubeApiError(409, f"{kind} {ns}/{name} conflicted and vanished")
    if not owned_by(existing, owner_uid):
        raise ChildConflictError(
            f"{kind} {ns}/{name} already exists and is not owned by this ModelDeployment; delete or rename it"
        )
    previous_text = (existing["metadata"].get("annotations") or {}).get(LAST_APPLIED)
    if immutable or (previous_text == _applied_json(desired) and is_subset(desired, existing)):
        return Action.UNCHANGED, existing
    try:
        previous = json.loads(previous_text) if previous_text else None
    except ValueError:
        previous = None
    patch = three_way_patch(previous, desired, keep)
    for field in ("apiVersion", "kind"):
        patch.pop(field, None)
    patch["metadata"].pop("name", None)
    patch["metadata"].pop("namespace", None)
    patch["metadata"].setdefault("annotations", {})[LAST_APPLIED] = _applied_json(desired)
    patch["metadata"]["resourceVersion"] = existing["metadata"].get("resourceVersion")
    obj = await kube.patch(api_version, kind, ns, name, patch)
    return Action.PATCHED, obj


async def ensure_present(kube: Kube, desired: dict[str, Any]) -> tuple[Action, dict[str, Any]]:
    """Create a shared object (one no ModelDeployment owns, e.g. a namespace's artifact claim) when it
    is absent; an existing one, whoever made it, is used as it is and never patched."""
    meta = desired["metadata"]
    existing = await kube.get(desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"])
    if existing is not None:
        return Action.UNCHANGED, existing
    body = json.loads(json.dumps(desired))
    body["metadata"].setdefault("annotations", {})[LAST_APPLIED] = _applied_json(desired)
    status, obj = await kube.create(body)
    if status == 409:  # made meanwhile by someone else: use it
        found = await kube.get_live(desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"])
        return Action.UNCHANGED, found or obj
    return Action.CREATED, obj


def _applied_json(desired: dict[str, Any]) -> str:
    return json.dumps(desired, sort_keys=True, separators=(",", ":"))


async def remove(kube: Kube, api_version: str, kind: str, obj: dict[str, Any] | None, owner_uid: str) -> bool:
    """Delete an owned child that is no longer wanted."""
    if obj is None or not owned_by(obj, owner_uid):
        return False
    meta = obj["metadata"]
    return await kube.delete(api_version, kind, meta["namespace"], meta["name"])
