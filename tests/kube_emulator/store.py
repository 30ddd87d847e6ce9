"""Object storage with a global resourceVersion counter, a bounded event history and live watches.

Every stored object is treated as immutable: writers build a new dict and `commit` it, so objects held
by the history or by watch queues never change under a reader. Lookups by key, uid and owner uid are
dictionary look-ups (no per-request scans, so the cost of a request does not grow with their number).
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kube_emulator.selectors import FieldSelector, LabelSelector

StoreKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


def obj_key(obj: dict[str, Any]) -> ObjKey:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


class Watch:
    """One open watch: a queue of (type, object) filtered by namespace and selectors."""

    def __init__(self, namespace: str | None, labels: LabelSelector, fields: FieldSelector) -> None:
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels")) and (not self.fields or self.fields.matches(obj))

    def translate(self, event: Event) -> tuple[str, dict[str, Any]] | None:
        """What this watcher sees of an event: selector transitions become ADDED/DELETED."""
        now = self.matches(event.obj)
        if event.type == "ADDED":
            return ("ADDED", event.obj) if now else None
        if event.type == "DELETED":
            return ("DELETED", event.obj) if now else None
        before = self.matches(event.old)
        if before and now:
            return ("MODIFIED", event.obj)
        if now:
            return ("ADDED", event.obj)
        if before:
            return ("DELETED", event.obj)
        return None

    def offer(self, event: Event) -> None:
        seen = self.translate(event)
        if seen is not None:
            self.queue.put_nowait(seen)


class Store:
    def __init__(self, history: int = 5000) -> None:
        self.rv = 0
        self.history_size = history
        self.objects: dict[StoreKey, dict[ObjKey, dict[str, Any]]] = {}
        self.history: dict[StoreKey, deque[Event]] = {}
        self.compacted: dict[StoreKey, int] = {}  # the highest RV dropped from a kind's history
        self.watches: dict[StoreKey, set[Watch]] = {}
        self.by_uid: dict[str, tuple[StoreKey, ObjKey]] = {}
        self.dependents: dict[str, set[tuple[StoreKey, ObjKey]]] = {}

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    # ------------------------------------------------------------ reads

    def get(self, skey: StoreKey, key: ObjKey) -> dict[str, Any] | None:
        return self.objects.get(skey, {}).get(key)

    def items(self, skey: StoreKey, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        for (ns, _), obj in sorted(self.objects.get(skey, {}).items()):
            if namespace is None or ns == namespace:
                yield obj

    def by_uid_get(self, uid: str) -> tuple[StoreKey, dict[str, Any]] | None:
        where = self.by_uid.get(uid)
        if where is None:
            return None
        obj = self.get(*where)
        return (where[0], obj) if obj is not None else None

    def dependents_of(self, uid: str) -> list[tuple[StoreKey, dict[str, Any]]]:
        out = []
        for skey, key in sorted(self.dependents.get(uid, ())):
            obj = self.get(skey, key)
            if obj is not None:
                out.append((skey, obj))
        return out

    # ------------------------------------------------------------ writes

    def commit(self, skey: StoreKey, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """Store `obj` (a new dict) with a fresh resourceVersion and tell the watchers."""
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        key = obj_key(obj)
        self.objects.setdefault(skey, {})[key] = obj
        uid = obj["metadata"]["uid"]
        self.by_uid[uid] = (skey, key)
        self._index_owners(skey, key, old, obj)
        self._emit(skey, Event(rv, "MODIFIED" if old is not None else "ADDED", obj, old))
        return obj

    def remove(self, skey: StoreKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Delete `obj` for good: a DELETED event that carries a new resourceVersion."""
        key = obj_key(obj)
        current = self.objects.get(skey, {}).pop(key, None)
        if current is None:
            return obj
        gone = {**current, "metadata": {**current["metadata"], "resourceVersion": str(self.next_rv())}}
        self.by_uid.pop(current["metadata"]["uid"], None)
        self._index_owners(skey, key, current, None)
        self._emit(skey, Event(self.rv, "DELETED", gone, current))
        return gone

    def drop_kind(self, skey: StoreKey) -> None:
        for obj in list(self.items(skey)):
            self.remove(skey, obj)
        for watch in self.watches.pop(skey, set()):
            watch.queue.put_nowait(None)

    def _index_owners(
        self, skey: StoreKey, key: ObjKey, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        def owners(o: dict[str, Any] | None) -> set[str]:
            if o is None:
                return set()
            return {ref.get("uid") for ref in o["metadata"].get("ownerReferences") or [] if ref.get("uid")}

        before, after = owners(old), owners(new)
        for uid in before - after:
            deps = self.dependents.get(uid)
            if deps is not None:
                deps.discard((skey, key))
                if not deps:
                    del self.dependents[uid]
        for uid in after - before:
            self.dependents.setdefault(uid, set()).add((skey, key))

    def _emit(self, skey: StoreKey, event: Event) -> None:
        hist = self.history.setdefault(skey, deque())
        hist.append(event)
        if len(hist) > self.history_size:
            self.compacted[skey] = hist.popleft().rv
        for watch in list(self.watches.get(skey, ())):
            watch.offer(event)

    # ------------------------------------------------------------ watches

    def events_since(self, skey: StoreKey, rv: int) -> list[Event] | None:
        """Events of a kind after `rv`; None when the history no longer reaches back that far (410 Gone)."""
        if rv < self.compacted.get(skey, 0):
            return None
        hist = self.history.get(skey)
        if not hist:
            return []
        rvs = [e.rv for e in hist] if len(hist) < 64 else None
        if rvs is not None:
            start = bisect.bisect_right(rvs, rv)
            return list(hist)[start:]
        # history is sorted by rv; walk from the end (recent resumes are the common case)
        out = []
        for event in reversed(hist):
            if event.rv <= rv:
                break
            out.append(event)
        out.reverse()
        return out

    def add_watch(self, skey: StoreKey, watch: Watch) -> None:
        self.watches.setdefault(skey, set()).add(watch)

    def remove_watch(self, skey: StoreKey, watch: Watch) -> None:
        self.watches.get(skey, set()).discard(watch)
