"""The API semantics: create, read, update, patch, delete, status and scale subresources, finalizers,
owner-reference garbage collection, namespaces and CRD registration. Transport-free: `server.py` maps
HTTP onto it and the test helpers call it directly (always on the emulator's event loop).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kube_emulator import kinds
from kube_emulator.errors import (
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
)
from kube_emulator.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_patch,
)
from kube_emulator.resources import Registry, ResourceType, builtin_types, types_from_crd
from kube_emulator.selectors import FieldSelector, LabelSelector, dotted, selector_string
from kube_emulator.store import Store, StoreKey
from kube_emulator.validation import (
    admit_custom,
    builtin_errors,
    check_crd_schema,
    check_metadata,
    check_name,
)

log = logging.getLogger("kube_emulator")

CRD_KEY: StoreKey = ("apiextensions.k8s.io", "customresourcedefinitions")
NS_KEY: StoreKey = ("", "namespaces")
FieldErrors = list[FieldError]
Warnings = list[str]
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SERVER_META = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy(obj: Any) -> Any:
    return copy.deepcopy(obj)


def _content(obj: dict[str, Any], with_status: bool) -> dict[str, Any]:
    return {
        k: v
        for k, v in obj.items()
        if k not in ("metadata", "apiVersion", "kind") and (with_status or k != "status")
    }


def _set_dotted(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = cur[part] = {}
        cur = nxt
    cur[parts[-1]] = value


class Emulator:
    """State and semantics of one emulated API server."""

    def __init__(self, *, history: int = 5000, kopf_peerings: bool = True) -> None:
        self.registry = Registry()
        for rtype in builtin_types():
            self.registry.add(rtype)
        self.store = Store(history=history)
        self.logs: dict[tuple[str, str, str], str] = {}  # (namespace, pod, container or "") -> text
        self.lenient_crds: set[str] = set()
        self.orphan_check_delay = 0.05  # seconds before a dependent of a missing owner is collected
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.rtype("", "v1", "namespaces"), None, {"metadata": {"name": ns}})
        if kopf_peerings:
            from kube_emulator.helpers import load_yaml_documents

            for crd in load_yaml_documents(Path(__file__).parent / "crds" / "kopf.dev_peerings.yaml"):
                self.install_crd(crd)

    # ------------------------------------------------------------ look-ups

    def rtype(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.registry.get(group, version, plural)
        if rtype is None:
            raise ApiError(
                404,
                "NotFound",
                "the server could not find the requested resource",
                details={"group": group, "kind": plural},
            )
        return rtype

    def rtype_for(self, api_version: str, kind: str) -> ResourceType:
        rtype = self.registry.by_kind(api_version, kind)
        if rtype is None:
            raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')
        return rtype

    def _out(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("apiVersion") != rtype.api_version:
            return {**obj, "apiVersion": rtype.api_version}
        return obj

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(rtype.store_key, (namespace or "", name))
        if obj is None:
            raise not_found(rtype.plural, rtype.group, name)
        return self._out(rtype, obj)

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        labels = LabelSelector.parse(label_selector)
        fields = FieldSelector.parse(field_selector, rtype.supports_field)
        start: tuple[str, str] | None = None
        list_rv = str(self.store.rv)
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start, list_rv = (token["ns"], token["name"]), token["rv"]
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(f"invalid continue token: {exc}") from exc
        items: list[dict[str, Any]] = []
        cont = ""
        for obj in self.store.items(rtype.store_key, namespace):
            meta = obj["metadata"]
            if start is not None and (meta.get("namespace") or "", meta["name"]) <= start:
                continue
            if not labels.matches(meta.get("labels")) or (fields and not fields.matches(obj)):
                continue
            if limit and len(items) >= limit:
                last = items[-1]["metadata"]
                cont = base64.urlsafe_b64encode(
                    json.dumps(
                        {"ns": last.get("namespace") or "", "name": last["name"], "rv": list_rv}
                    ).encode()
                ).decode()
                break
            items.append(self._out(rtype, obj))
        metadata: dict[str, Any] = {"resourceVersion": list_rv}
        if cont:
            metadata["continue"] = cont
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": metadata,
            "items": items,
        }

    # ------------------------------------------------------------ create

    def create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: Warnings | None = None,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of a create must be an object")
        obj = _copy(body)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        self._check_kind(rtype, obj)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        namespace = self._scope(rtype, namespace, meta)
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise invalid(
                    rtype.kind,
                    rtype.group,
                    "",
                    [
                        FieldError(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            for _ in range(16):
                name = prefix[:58] + "".join(random.choices(_NAME_CHARS, k=5))
                if self.store.get(rtype.store_key, (namespace or "", name)) is None:
                    break
            meta["name"] = name
        name = meta["name"]
        errs = check_name(name, rtype.store_key) + check_metadata(meta)
        if errs:
            raise invalid(rtype.kind, rtype.group, name, errs)
        if namespace is not None:
            ns = self.store.get(NS_KEY, ("", namespace))
            if ns is None:
                raise not_found("namespaces", "", namespace)
            if ns["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{rtype.plural} "{name}" is forbidden: unable to create new content in namespace '
                    f"{namespace} because it is being terminated",
                )
        if self.store.get(rtype.store_key, (namespace or "", name)) is not None:
            raise already_exists(rtype.plural, rtype.group, name)
        for key in (*_SERVER_META, "resourceVersion"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        if rtype.status and rtype.crd is not None:
            obj.pop("status", None)
        errs = kinds.on_create(rtype.store_key, obj)
        errs += builtin_errors(rtype.store_key, obj)
        if rtype.crd is not None:
            errs += self._admit(rtype, obj, None, field_validation, warnings)
        if rtype.store_key == CRD_KEY:
            errs += self._crd_errors(obj)
        if errs:
            raise invalid(rtype.kind, rtype.group, name, errs)
        if dry_run:
            return self._out(rtype, obj)
        stored = self.store.commit(rtype.store_key, obj, None)
        if rtype.store_key == CRD_KEY:
            stored = self._crd_established(stored)
        if meta.get("ownerReferences"):
            self._schedule_orphan_check(rtype.store_key, meta["uid"])
        return self._out(rtype, stored)

    def _admit(
        self,
        rtype: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        field_validation: str,
        warnings: Warnings | None,
    ) -> FieldErrors:
        """Schema admission of a custom resource, with the fieldValidation of the request."""
        unknown: Warnings = []
        errs = admit_custom(obj, rtype.schema, old, unknown)
        if unknown and field_validation == "Strict":
            listed = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise bad_request(
                f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                f"strict decoding error: {listed}"
            )
        if unknown and field_validation == "Warn" and warnings is not None:
            warnings.extend(f'unknown field "{path}"' for path in unknown)
        return errs

    def _check_kind(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != rtype.kind:
            raise bad_request(f"the kind {kind!r} of the body does not match the resource {rtype.kind!r}")
        if api_version and api_version.split("/")[0] != rtype.api_version.split("/")[0] and rtype.group:
            raise bad_request(
                f"the apiVersion {api_version!r} of the body does not match {rtype.api_version!r}"
            )

    def _scope(self, rtype: ResourceType, namespace: str | None, meta: dict[str, Any]) -> str | None:
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return None
        body_ns = meta.get("namespace")
        if namespace is None:
            namespace = body_ns
        if not namespace:
            raise bad_request("the namespace of the object is required")
        if body_ns and body_ns != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
        return namespace

    # ------------------------------------------------------------ update / patch

    def replace(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: Warnings | None = None,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of an update must be an object")
        old = self.get(rtype, namespace, name)
        new = _copy(body)
        new.setdefault("metadata", {})
        rv = new["metadata"].get("resourceVersion")
        if not rv and rtype.crd is not None and subresource is None:
            raise invalid(
                rtype.kind,
                rtype.group,
                name,
                [
                    FieldError(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0: must be specified for an update",
                    )
                ],
            )
        body_name = new["metadata"].get("name")
        if body_name and body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        return self._write(
            rtype,
            old,
            new,
            subresource=subresource,
            dry_run=dry_run,
            field_validation=field_validation,
            warnings=warnings,
        )

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: Warnings | None = None,
    ) -> dict[str, Any]:
        old = self.get(rtype, namespace, name)
        new = self._apply_patch(rtype, old, content_type, patch)
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise ApiError(422, "Invalid", "the patch removed the object's metadata")
        return self._write(
            rtype,
            old,
            new,
            subresource=subresource,
            dry_run=dry_run,
            field_validation=field_validation,
            warnings=warnings,
        )

    def _apply_patch(self, rtype: ResourceType, old: dict[str, Any], content_type: str, patch: Any) -> Any:
        ctype = content_type.split(";")[0].strip()
        if ctype == JSON_PATCH:
            return apply_json_patch(old, patch)
        if ctype == MERGE_PATCH:
            return apply_merge_patch(old, patch)
        if ctype == APPLY_PATCH:
            # server-side apply without field ownership: the applied configuration is merged in
            if not isinstance(patch, dict):
                raise bad_request("an apply patch must be an object")
            if rtype.crd is not None:
                return apply_merge_patch(old, patch)
            return apply_strategic_patch(old, patch)
        if ctype == STRATEGIC_PATCH:
            if rtype.crd is not None:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}",
                )
            return apply_strategic_patch(old, patch)
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_PATCH}",
        )

    def server_side_apply(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Strict",
        warnings: Warnings | None = None,
    ) -> tuple[dict[str, Any], int]:
        """PATCH application/apply-patch+yaml: create the object, or merge the applied configuration in."""
        if not isinstance(body, dict):
            raise bad_request("an apply patch must be an object")
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        if self.store.get(rtype.store_key, (namespace or "" if rtype.namespaced else "", name)) is None:
            body = {**body, "metadata": {**(body.get("metadata") or {}), "name": name}}
            made = self.create(
                rtype, namespace, body, dry_run=dry_run, field_validation=field_validation, warnings=warnings
            )
            return made, 201
        patched = self.patch(
            rtype,
            namespace,
            name,
            APPLY_PATCH,
            body,
            dry_run=dry_run,
            field_validation=field_validation,
            warnings=warnings,
        )
        return patched, 200

    def _write(
        self,
        rtype: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        *,
        subresource: str | None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: Warnings | None = None,
    ) -> dict[str, Any]:
        """The common update path of PUT and PATCH, on the main resource or its status."""
        skey = rtype.store_key
        name = old["metadata"]["name"]
        old_meta = old["metadata"]
        rv = new.get("metadata", {}).get("resourceVersion")
        if rv and str(rv) != old_meta["resourceVersion"]:
            raise conflict(rtype.plural, rtype.group, name)
        if subresource == "status":
            status = new.get("status")
            new = _copy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            meta = new["metadata"]
            for key in _SERVER_META:
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            meta["name"] = old_meta["name"]
            if "namespace" in old_meta:
                meta["namespace"] = old_meta["namespace"]
            new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
            if rtype.status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            errs = check_metadata(meta)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    errs.append(
                        FieldError(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            f"Forbidden: no new finalizers can be added if the object is being "
                            f"deleted, found new finalizers {sorted(added)}",
                        )
                    )
            errs += kinds.on_update(skey, old, new)
            errs += builtin_errors(skey, new)
            if errs:
                raise invalid(rtype.kind, rtype.group, name, errs)
        if rtype.crd is not None:
            errs = self._admit(rtype, new, old, field_validation, warnings)
            if errs:
                raise invalid(rtype.kind, rtype.group, name, errs)
        if skey == CRD_KEY and subresource is None:
            errs = self._crd_errors(new)
            if errs:
                raise invalid(rtype.kind, rtype.group, name, errs)
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return self._out(rtype, old)  # a no-op write: no new resourceVersion, no event
        if _content(new, not rtype.status) != _content(old, not rtype.status):
            new["metadata"]["generation"] = int(old_meta.get("generation") or 1) + 1
        if dry_run:
            return self._out(rtype, new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self.store.commit(skey, new, old)
            gone = self.store.remove(skey, new)
            self._after_removal(rtype, gone)
            return self._out(rtype, gone)
        stored = self.store.commit(skey, new, old)
        if skey == CRD_KEY:
            stored = self._crd_established(stored)
        refs = new["metadata"].get("ownerReferences")
        if refs and refs != old_meta.get("ownerReferences"):
            self._schedule_orphan_check(skey, old_meta["uid"])
        return self._out(rtype, stored)

    # ------------------------------------------------------------ scale subresource

    def get_scale(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        if rtype.scale is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        obj = self.get(rtype, namespace, name)
        sc = rtype.scale
        if sc.label_selector is None:
            selector = selector_string((obj.get("spec") or {}).get("selector"))
        else:
            selector = dotted(obj, sc.label_selector)
        meta = obj["metadata"]
        status: dict[str, Any] = {"replicas": dotted(obj, sc.status_replicas) or 0}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": dotted(obj, sc.spec_replicas) or 0},
            "status": status,
        }

    def write_scale(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        scale = self.get_scale(rtype, namespace, name)
        new_scale = (
            body
            if content_type is None
            else self._apply_patch(self.rtype("", "v1", "pods"), scale, content_type, body)
        )
        if not isinstance(new_scale, dict):
            raise bad_request("a Scale body must be an object")
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    FieldError(
                        "spec.replicas",
                        "FieldValueInvalid",
                        f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                    )
                ],
            )
        rv = (new_scale.get("metadata") or {}).get("resourceVersion")
        obj = _copy(self.get(rtype, namespace, name))
        if rv and rv != obj["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, rtype.group, name)
        assert rtype.scale is not None
        _set_dotted(obj, rtype.scale.spec_replicas, replicas)
        self._write(rtype, self.get(rtype, namespace, name), obj, subresource=None, dry_run=dry_run)
        return self.get_scale(rtype, namespace, name)

    # ------------------------------------------------------------ delete

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], int]:
        """Delete or mark for deletion; returns the object and 200 (gone) or 202 (waiting on finalizers)."""
        options = options or {}
        obj = self.get(rtype, namespace, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise conflict(
                rtype.plural,
                rtype.group,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                f"{obj['metadata']['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise conflict(
                rtype.plural,
                rtype.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {obj['metadata']['resourceVersion']}",
            )
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background"
        )
        if policy not in ("Background", "Foreground", "Orphan"):
            raise bad_request(f"unsupported propagationPolicy {policy!r}")
        if dry_run:
            return obj, 200
        return self._delete(rtype.store_key, obj, policy)

    def _delete(self, skey: StoreKey, obj: dict[str, Any], policy: str) -> tuple[dict[str, Any], int]:
        rtype = self._rtype_of(skey)
        meta = obj["metadata"]
        uid = meta["uid"]
        if policy == "Orphan":
            for dkey, dep in self.store.dependents_of(uid):
                new = _copy(dep)
                refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                if refs:
                    new["metadata"]["ownerReferences"] = refs
                else:
                    new["metadata"].pop("ownerReferences", None)
                self.store.commit(dkey, new, dep)
        finalizers = list(meta.get("finalizers") or [])
        if (
            policy == "Foreground"
            and self.store.dependents_of(uid)
            and "foregroundDeletion" not in finalizers
        ):
            finalizers.append("foregroundDeletion")
        if skey == NS_KEY:
            return self._delete_namespace(obj)
        if finalizers:
            if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
                return self._out(rtype, obj), 202
            new = _copy(obj)
            new["metadata"]["finalizers"] = finalizers
            if not meta.get("deletionTimestamp"):
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["generation"] = int(meta.get("generation") or 1) + 1
            stored = self.store.commit(skey, new, obj)
            if "foregroundDeletion" in finalizers:
                for dkey, dep in self.store.dependents_of(uid):
                    self._delete(dkey, dep, "Foreground")
                self._finish_foreground(skey, uid)
            return self._out(
                rtype, self.store.get(skey, (meta.get("namespace") or "", meta["name"])) or stored
            ), 202
        gone = self.store.remove(skey, obj)
        self._after_removal(rtype, gone)
        return self._out(rtype, gone), 200

    def _schedule_orphan_check(self, skey: StoreKey, uid: str) -> None:
        """The garbage collector deletes a dependent whose owners do not exist (checked shortly after)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(self.orphan_check_delay, self._collect_if_orphaned, skey, uid)

    def _collect_if_orphaned(self, skey: StoreKey, uid: str) -> None:
        found = self.store.by_uid_get(uid)
        if found is None:
            return
        obj = found[1]
        refs = obj["metadata"].get("ownerReferences") or []
        if (
            refs
            and not obj["metadata"].get("deletionTimestamp")
            and not any(self.store.by_uid_get(ref.get("uid", "")) for ref in refs)
        ):
            log.info("garbage-collecting %s %s: none of its owners exists", skey[1], obj["metadata"]["name"])
            self._delete(skey, obj, "Background")

    def _finish_foreground(self, skey: StoreKey, uid: str) -> None:
        found = self.store.by_uid_get(uid)
        if found is None or self.store.dependents_of(uid):
            return
        obj = found[1]
        fins = list(obj["metadata"].get("finalizers") or [])
        if "foregroundDeletion" not in fins:
            return
        new = _copy(obj)
        fins.remove("foregroundDeletion")
        new["metadata"]["finalizers"] = fins
        rtype = self._rtype_of(skey)
        self._write(rtype, obj, new, subresource=None)

    def _rtype_of(self, skey: StoreKey) -> ResourceType:
        for rtype in self.registry.all():
            if rtype.store_key == skey:
                return rtype
        raise ApiError(404, "NotFound", f"no kind is served for {skey}")

    def _after_removal(self, rtype: ResourceType, gone: dict[str, Any]) -> None:
        """Garbage collection once an object is gone for good."""
        meta = gone["metadata"]
        uid = meta["uid"]
        for dkey, dep in self.store.dependents_of(uid):
            refs = dep["metadata"].get("ownerReferences") or []
            alive = [r for r in refs if r.get("uid") != uid and self.store.by_uid_get(r.get("uid", ""))]
            if not alive and not dep["metadata"].get("deletionTimestamp"):
                self._delete(dkey, dep, "Background")
        # an owner waiting in foreground deletion for this object may now go
        for ref in meta.get("ownerReferences") or []:
            found = self.store.by_uid_get(ref.get("uid", ""))
            if found is not None:
                self._finish_foreground(found[0], ref["uid"])
        if rtype.store_key == CRD_KEY:
            for t in self.registry.remove_crd(meta["name"]):
                if not any(x.store_key == t.store_key for x in self.registry.all()):
                    self.store.drop_kind(t.store_key)
        if rtype.namespaced and meta.get("namespace"):
            ns = self.store.get(NS_KEY, ("", meta["namespace"]))
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self._finish_namespace(ns)
        if rtype.store_key == ("", "pods"):
            for key in [k for k in self.logs if k[0] == meta.get("namespace") and k[1] == meta["name"]]:
                del self.logs[key]

    def _delete_namespace(self, ns: dict[str, Any]) -> tuple[dict[str, Any], int]:
        rtype = self._rtype_of(NS_KEY)
        if not ns["metadata"].get("deletionTimestamp"):
            new = _copy(ns)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            ns = self.store.commit(NS_KEY, new, ns)
        name = ns["metadata"]["name"]
        for t in self.registry.all():
            if t.namespaced:
                for obj in list(self.store.items(t.store_key, name)):
                    if (
                        not obj["metadata"].get("deletionTimestamp")
                        and self.store.get(t.store_key, (name, obj["metadata"]["name"])) is not None
                    ):
                        self._delete(t.store_key, obj, "Background")
        self._finish_namespace(ns)
        current = self.store.get(NS_KEY, ("", name))
        return self._out(rtype, current or ns), 202 if current else 200

    def _finish_namespace(self, ns: dict[str, Any]) -> None:
        name = ns["metadata"]["name"]
        for t in self.registry.all():
            if t.namespaced and next(iter(self.store.items(t.store_key, name)), None) is not None:
                return
        current = self.store.get(NS_KEY, ("", name))
        if current is not None and not current["metadata"].get("finalizers"):
            gone = self.store.remove(NS_KEY, current)
            self._after_removal(self._rtype_of(NS_KEY), gone)

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        listed = self.list(rtype, namespace, label_selector=label_selector, field_selector=field_selector)
        for obj in listed["items"]:
            meta = obj["metadata"]
            if self.store.get(rtype.store_key, (meta.get("namespace") or "", meta["name"])) is not None:
                self.delete(rtype, meta.get("namespace"), meta["name"], options)
        return listed

    # ------------------------------------------------------------ CRDs

    def _crd_errors(self, crd: dict[str, Any]) -> FieldErrors:
        errs: list[FieldError] = []
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural = spec.get("group", ""), names.get("plural", "")
        if crd["metadata"]["name"] != f"{plural}.{group}":
            errs.append(
                FieldError(
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{crd["metadata"]["name"]}": must be spec.names.plural+"."+spec.group',
                )
            )
        if not names.get("kind"):
            errs.append(FieldError("spec.names.kind", "FieldValueRequired", "Required value"))
        versions = spec.get("versions") or []
        if not versions:
            errs.append(FieldError("spec.versions", "FieldValueRequired", "Required value"))
        if sum(1 for v in versions if v.get("storage")) != 1:
            errs.append(
                FieldError(
                    "spec.versions",
                    "FieldValueInvalid",
                    "Invalid value: must have exactly one version marked as storage version",
                )
            )
        lenient = crd["metadata"]["name"] in self.lenient_crds
        for i, version in enumerate(versions):
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                errs.append(
                    FieldError(
                        f"spec.versions[{i}].schema.openAPIV3Schema",
                        "FieldValueRequired",
                        "Required value: schemas are required",
                    )
                )
                continue
            problems = check_crd_schema(schema, f"spec.versions[{i}].schema.openAPIV3Schema")
            tolerated = [p for p in problems if lenient and "cannot unmarshal" in p]
            if tolerated:
                log.warning(
                    "CRD %s accepted leniently despite %d decode problems, e.g. %s",
                    crd["metadata"]["name"],
                    len(tolerated),
                    tolerated[0],
                )
            for problem in problems:
                if problem in tolerated:
                    continue
                field, _, message = problem.partition(": ")
                errs.append(FieldError(field, "FieldValueInvalid", message))
        for other in self.store.items(CRD_KEY):
            ospec = other["spec"]
            if (
                other["metadata"]["name"] != crd["metadata"]["name"]
                and ospec.get("group") == group
                and (ospec["names"].get("kind") == names.get("kind"))
            ):
                errs.append(
                    FieldError(
                        "spec.names.kind", "FieldValueInvalid", "Invalid value: kind is already in use"
                    )
                )
        return errs

    def _crd_established(self, crd: dict[str, Any]) -> dict[str, Any]:
        """Serve the CRD's kinds and mark it Established, as the apiextensions controller does."""
        name = crd["metadata"]["name"]
        self.registry.remove_crd(name)
        for rtype in types_from_crd(crd):
            self.registry.add(rtype)
        spec = crd["spec"]
        ts = now_rfc3339()
        status = {
            "acceptedNames": spec["names"],
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": ts,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": ts,
                },
            ],
        }
        old_status = crd.get("status") or {}
        if old_status.get("acceptedNames") == status["acceptedNames"] and old_status.get("conditions"):
            return crd
        new = _copy(crd)
        new["status"] = status
        return self.store.commit(CRD_KEY, new, crd)

    def install_crd(self, crd: dict[str, Any], *, lenient: bool = False) -> dict[str, Any]:
        """Create or replace a CRD (as `kubectl apply` would); `lenient` accepts JSON-Schema-style bounds."""
        if lenient:
            self.lenient_crds.add(crd["metadata"]["name"])
        rtype = self.rtype(CRD_KEY[0], "v1", CRD_KEY[1])
        existing = self.store.get(CRD_KEY, ("", crd["metadata"]["name"]))
        if existing is None:
            return self.create(rtype, None, crd)
        body = _copy(crd)
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return self.replace(rtype, None, crd["metadata"]["name"], body)
