"""Reads from the watch caches, writes to the API server (what controller-runtime's client does).

`ObjectStore` holds the objects of the kinds the operator watches (its kopf handlers feed it, as an
informer feeds its indexer): ModelDeployments, the owned children (Jobs, Deployments, Services,
ConfigMaps, PodDisruptionBudgets) and PersistentVolumeClaims. `CachedKube` is the `Kube` a reconcile
uses: `get` and `list` of a watched kind answer from the store, every write goes to the API server, and
`get_live` (the apply layer's re-read after a 409 AlreadyExists) always asks the API.

Correctness with stale reads, as in controller-runtime:
- a create the cache did not know was needed meets 409 AlreadyExists: the apply layer re-reads that
  object (one GET) and goes on from it, so nothing is created twice;
- a patch carries the resourceVersion it was computed from (`apply.ensure`, the status write, the
  finalizer list): on a stale one the API answers 409 Conflict and the queue reconciles again shortly,
  by when the watch has delivered the newer object;
- a miss of a ModelDeployment or a PersistentVolumeClaim is confirmed with the API before anything is
  decided on it (the queue forgets an absent ModelDeployment, a missing claim fails the object), and so
  is one where the caller asks (`confirm_miss`: the serving Deployment, which is created with a replica
  count of its own): right after the operator starts, a trigger may come before that kind's first list;
- the answers to the operator's own creates and patches (and live re-reads) are written through to the
  store, so that the next reconcile sees them before their watch events come (its own status write, a
  ConfigMap it just created and may prune beside); never one whose deletion the watch has delivered.
  A watch event older than such an answer may still replace it: the next patch from it meets 409.
Pods (the children's, as the pod watch delivers them) are listed from here only where the caller asks:
whether a running stage's or a rollout's pod cannot start (its watch event triggers the reconcile
anyway). A finished stage's pods are listed from the API: the succeeded pod must be read with its
termination message, which its own watch may deliver after the Job's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trtforge_runtime.spec.model import API_VERSION, KIND

from trtforge_operator.apply import Kube

Kind = tuple[str, str]  # (apiVersion, kind)
Key = tuple[str, str]  # (namespace, name)

# the kinds the operator's handlers watch and store; a miss of an AUTHORITATIVE kind means absent
AUTHORITATIVE: frozenset[Kind] = frozenset(
    {
        ("batch/v1", "Job"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("policy/v1", "PodDisruptionBudget"),
        ("apps/v1", "Deployment"),
    }
)
CONFIRM_MISSES: frozenset[Kind] = frozenset({(API_VERSION, KIND), ("v1", "PersistentVolumeClaim")})
POD: Kind = ("v1", "Pod")  # stored, but listed from here only where the caller asks (`cached=True`)
STORED = AUTHORITATIVE | CONFIRM_MISSES | {POD}
DELETED_UIDS = 4096  # deletions remembered (so that a late answer of a write never brings one back)


def kind_of(body: Mapping[str, Any]) -> Kind:
    return str(body.get("apiVersion")), str(body.get("kind"))


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def parse_selector(selector: str | None) -> dict[str, str] | None:
    """`a=b,c==d` as a dict; None for anything but equality terms (those lists go to the API)."""
    out: dict[str, str] = {}
    for term in (selector or "").split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term or "=" not in term or " " in term:
            return None
        k, _, v = term.replace("==", "=").partition("=")
        out[k] = v
    return out


class ObjectStore:
    """The latest object of each watched kind by (namespace, name), as the watches delivered it."""

    def __init__(self) -> None:
        self._tables: dict[Kind, dict[Key, dict[str, Any]]] = {kind: {} for kind in STORED}
        self._deleted: dict[str, None] = {}  # uids of the latest deletions, oldest first

    def table(self, api_version: str, kind: str) -> dict[Key, dict[str, Any]]:
        return self._tables[(api_version, kind)]

    def stores(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._tables

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event: ADDED / MODIFIED / None (listed) store the object, DELETED drops it."""
        table = self._tables.get(kind_of(body))
        if table is None:
            return
        if event_type == "DELETED":
            table.pop(key_of(body), None)
            uid = (body.get("metadata") or {}).get("uid")
            if uid:
                self._deleted[str(uid)] = None
                while len(self._deleted) > DELETED_UIDS:
                    del self._deleted[next(iter(self._deleted))]
        else:
            table[key_of(body)] = dict(body)

    def remember(self, body: Mapping[str, Any]) -> None:
        """The answer to the operator's own create or patch (or a live read): stored at once, so that
        the next reconcile sees it before its watch event comes; never an object whose deletion the
        watch already delivered (its uid is remembered as deleted)."""
        table = self._tables.get(kind_of(body))
        uid = (body.get("metadata") or {}).get("uid")
        if table is not None and uid and uid not in self._deleted:
            table[key_of(body)] = dict(body)

    def drop(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._tables.get((api_version, kind), {}).pop((namespace, name), None)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._tables[(api_version, kind)].get((namespace, name))

    def list(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        out = []
        for (ns, _), obj in self._tables[(api_version, kind)].items():
            obj_labels = (obj.get("metadata") or {}).get("labels") or {}
            if ns == namespace and all(obj_labels.get(k) == v for k, v in selector.items()):
                out.append(obj)
        return out


class CachedKube(Kube):
    """A `Kube` whose reads of the stored kinds come from an `ObjectStore` (see the module docstring).

    Requests go through the wrapped `Kube`, so its `requests` counter counts them all."""

    def __init__(self, kube: Kube, store: ObjectStore) -> None:
        super().__init__(kube.api)
        self.live = kube
        self.store = store

    @property
    def requests(self) -> int:
        return self.live.requests

    @requests.setter
    def requests(self, value: int) -> None:
        if hasattr(self, "live"):
            self.live.requests = value

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
        return await self.live.request(method, path, query=query, body=body, content_type=content_type, ok=ok)

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str, *, confirm_miss: bool = False
    ) -> dict[str, Any] | None:
        if not self.store.stores(api_version, kind):
            return await self.live.get(api_version, kind, namespace, name)
        obj = self.store.get(api_version, kind, namespace, name)
        if obj is None and (confirm_miss or (api_version, kind) in CONFIRM_MISSES):
            return await self.get_live(api_version, kind, namespace, name)
        return obj

    async def get_live(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = await self.live.get(api_version, kind, namespace, name)
        if obj is not None:
            self.store.remember(obj)
        return obj

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        label_selector: str | None = None,
        *,
        cached: bool = False,
    ) -> list[dict[str, Any]]:
        selector = parse_selector(label_selector)
        from_store = (api_version, kind) in AUTHORITATIVE or (cached and (api_version, kind) == POD)
        if selector is None or not from_store:
            return await self.live.list(api_version, kind, namespace, label_selector)
        return self.store.list(api_version, kind, namespace, selector)

    async def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any], sub: str = ""
    ) -> dict[str, Any]:
        obj = await self.live.patch(api_version, kind, namespace, name, patch, sub)
        if sub in ("", "status"):
            self.store.remember(obj)
        return obj

    async def create(self, manifest: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, obj = await self.live.create(manifest)
        if status != 409:
            self.store.remember(obj)
        return status, obj

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        gone = await self.live.delete(api_version, kind, namespace, name)
        self.store.drop(api_version, kind, namespace, name)
        return gone
