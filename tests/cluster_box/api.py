"""The API server as the box's controllers see it: plain calls on the emulator, on the emulator's loop.

Each controller step runs inside one `Kube.call`, so it reads and writes a consistent state without
conflicts; the operator meanwhile talks to the same emulator over HTTP and sees every change in its
watches. Controllers write `status` through the status subresource only, as the real ones do.
"""

from __future__ import annotations

import copy
from typing import Any

from kube_emulator.emulator import Emulator
from kube_emulator.errors import ApiError
from kube_emulator.patch import MERGE_PATCH


class Api:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        items = self.emu.list(self.emu.rtype_for(api_version, kind), namespace)["items"]
        return [copy.deepcopy(i) for i in items]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        try:
            return copy.deepcopy(self.emu.get(self.emu.rtype_for(api_version, kind), namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def fresh(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        meta = obj["metadata"]
        found = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if found is None or found["metadata"].get("uid") != meta.get("uid"):
            return None
        return found

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        rtype = self.emu.rtype_for(obj["apiVersion"], obj["kind"])
        return copy.deepcopy(self.emu.create(rtype, obj["metadata"].get("namespace"), obj))

    def set_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        """Write `status` of the stored object (same uid); nothing when unchanged; None when gone."""
        current = self.fresh(obj)
        if current is None:
            return None
        if current.get("status") == status:
            return current
        body = copy.deepcopy(current)
        body["status"] = status
        meta = current["metadata"]
        rtype = self.emu.rtype_for(current["apiVersion"], current["kind"])
        return copy.deepcopy(
            self.emu.replace(rtype, meta.get("namespace"), meta["name"], body, subresource="status")
        )

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        rtype = self.emu.rtype_for(obj["apiVersion"], obj["kind"])
        return copy.deepcopy(self.emu.replace(rtype, meta.get("namespace"), meta["name"], obj))

    def merge_patch(self, obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
        current = self.fresh(obj)
        if current is None:
            return None
        meta = current["metadata"]
        rtype = self.emu.rtype_for(current["apiVersion"], current["kind"])
        return copy.deepcopy(self.emu.patch(rtype, meta.get("namespace"), meta["name"], MERGE_PATCH, patch))

    def delete(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        rtype = self.emu.rtype_for(obj["apiVersion"], obj["kind"])
        try:
            self.emu.delete(
                rtype,
                meta.get("namespace"),
                meta["name"],
                {"propagationPolicy": "Background", "preconditions": {"uid": meta["uid"]}},
            )
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def set_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        self.emu.logs[(namespace, pod, container)] = text


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def condition(
    conditions: list[dict[str, Any]], ctype: str, status: str, reason: str, message: str, now: str
) -> list[dict[str, Any]]:
    """`conditions` with `ctype` set; lastTransitionTime moves only when the status changes."""
    out, found = [], False
    for cond in conditions:
        if cond.get("type") == ctype:
            found = True
            moved = cond.get("status") != status
            cond = {
                **cond,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now if moved else cond.get("lastTransitionTime", now),
            }
        out.append(cond)
    if not found:
        out.append(
            {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
        )
    return out
