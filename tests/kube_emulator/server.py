"""HTTP front of the emulator: routes the Kubernetes REST paths onto `Emulator` with aiohttp.

Serves discovery (/version, /api, /api/v1, /apis, /apis/G, /apis/G/V; legacy, unaggregated, which
kubectl and the clients fall back to), CRUD, watch streams (resume from resourceVersion, bookmarks,
sendInitialEvents, timeoutSeconds, label/field selectors), the status/scale/log subresources and
server-side Table output for `kubectl get`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from kube_emulator import authz, openapi
from kube_emulator.emulator import Emulator
from kube_emulator.errors import ApiError, bad_request, method_not_allowed
from kube_emulator.resources import ResourceType
from kube_emulator.selectors import FieldSelector, LabelSelector
from kube_emulator.store import Watch
from kube_emulator.tables import to_table

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - orjson is in the serve extra

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


log = logging.getLogger("kube_emulator.server")
VERSION = {
    "major": "1",
    "minor": "35",
    "gitVersion": "v1.35.0-kube-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    response = web.Response(body=dumps(body), status=status, content_type="application/json")
    for text in warnings or ():
        response.headers.add("Warning", f'299 - "{text.replace(chr(34), chr(92) + chr(34))}"')
    return response


def _verb(method: str, name: str | None, watch: bool) -> str:
    """The RBAC verb of a request."""
    if method == "GET":
        return "watch" if watch else ("get" if name else "list")
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or (
        "delete" if name else "deletecollection"
    )


class ApiServer:
    """aiohttp application serving one `Emulator`."""

    def __init__(self, emulator: Emulator, *, bookmark_interval: float = 5.0) -> None:
        self.emu = emulator
        self.bookmark_interval = bookmark_interval
        self.address = "127.0.0.1:0"
        self.requests = 0
        self.closing = False
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        try:
            return await self._dispatch(request)
        except ApiError as exc:
            return _json(exc.status(), exc.code)
        except Exception as exc:  # a bug in the emulator: answer 500 with the reason, and log it
            log.exception("emulator error on %s %s", request.method, request.path_qs)
            return _json(
                ApiError(500, "InternalError", f"kube_emulator: {type(exc).__name__}: {exc}").status(), 500
            )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/version", "/healthz", "/readyz", "/livez"]})
        head = parts[0]
        if head == "version":
            return _json(VERSION)
        if head in ("healthz", "readyz", "livez"):
            return web.Response(text="ok")
        if head == "openapi":
            return self._openapi(parts[1:])
        if head == "api":
            if len(parts) == 1:
                return _json(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}
                        ],
                    }
                )
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json(self._group_list())
            if len(parts) == 2:
                return _json(self._group(parts[1]))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            return _json(self._resource_list(group, version))
        return await self._resource(request, group, version, rest)

    # ------------------------------------------------------------ discovery

    def _openapi(self, parts: list[str]) -> web.Response:
        not_found = ApiError(404, "NotFound", "the server could not find the requested resource")
        if not parts or parts[0] != "v3":
            raise not_found  # no /openapi/v2: clients use v3 or fall back
        if len(parts) == 1:
            return _json(openapi.root(self.emu.registry))
        if parts[1] == "api" and len(parts) == 3:
            doc = openapi.document(self.emu.registry, "", parts[2])
        elif parts[1] == "apis" and len(parts) == 4:
            doc = openapi.document(self.emu.registry, parts[2], parts[3])
        else:
            doc = None
        if doc is None:
            raise not_found
        return _json(doc)

    def _group_list(self) -> dict[str, Any]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [self._group(g) for g in self.emu.registry.group_versions() if g],
        }

    def _group(self, group: str) -> dict[str, Any]:
        versions = self.emu.registry.group_versions().get(group)
        if not versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": gvs,
            "preferredVersion": gvs[0],
        }

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        types = self.emu.registry.in_group_version(group, version)
        if not types:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resources = [entry for t in types for entry in t.discovery()]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    # ------------------------------------------------------------ resources

    async def _resource(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        rtype = self.emu.rtype(group, version, plural)
        if namespace is not None and not rtype.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        q = request.query
        user = authz.user_of(request.headers.get("Authorization"), request.headers.get("Impersonate-User"))
        if user is not None and rtype.store_key not in authz.REVIEWS:  # reviews are open to everyone
            verb = _verb(request.method, name, q.get("watch") in ("true", "1"))
            if not authz.allowed(self.emu.store, user, verb, group, plural, sub, namespace, name):
                raise authz.forbidden(user, verb, group, plural, sub, namespace, name)
        dry_run = q.get("dryRun") == "All"
        validation = q.get("fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise bad_request(f"fieldValidation must be one of Ignore, Warn, Strict, not {validation!r}")
        warnings: list[str] = []
        method = request.method
        if sub is not None and sub not in ("status", "scale", *rtype.subresources):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if (sub == "status" and not rtype.status) or (sub == "scale" and rtype.scale is None):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

        if name is None:
            if method == "GET":
                if q.get("watch") in ("true", "1"):
                    return await self._watch(request, rtype, namespace)
                listed = self.emu.list(
                    rtype,
                    namespace,
                    label_selector=q.get("labelSelector"),
                    field_selector=q.get("fieldSelector"),
                    limit=int(q["limit"]) if q.get("limit") else None,
                    continue_token=q.get("continue"),
                )
                return self._maybe_table(request, rtype, listed)
            if method == "POST" and rtype.store_key in authz.REVIEWS:
                if request.content_type.startswith("application/vnd.kubernetes.protobuf"):
                    body = authz.decode_review(await request.read())
                else:
                    body = await self._body(request)
                return _json(authz.review(self.emu.store, plural, body, user), 201)
            if rtype.store_key in authz.REVIEWS:
                raise method_not_allowed()
            if method == "POST":
                if rtype.namespaced and namespace is None:
                    raise method_not_allowed()
                body = await self._body(request)
                made = self.emu.create(
                    rtype, namespace, body, dry_run=dry_run, field_validation=validation, warnings=warnings
                )
                return _json(made, 201, warnings)
            if method == "DELETE":
                options = await self._delete_options(request)
                listed = self.emu.delete_collection(
                    rtype,
                    namespace,
                    label_selector=q.get("labelSelector"),
                    field_selector=q.get("fieldSelector"),
                    options=options,
                )
                return _json(listed)
            raise method_not_allowed()

        if sub == "log":
            if method != "GET":
                raise method_not_allowed()
            return self._log(rtype, namespace, name, q)
        if sub == "scale":
            if method == "GET":
                return _json(self.emu.get_scale(rtype, namespace, name))
            body = await self._body(request)
            if method == "PUT":
                return _json(self.emu.write_scale(rtype, namespace, name, body=body, dry_run=dry_run))
            if method == "PATCH":
                return _json(
                    self.emu.write_scale(
                        rtype, namespace, name, body=body, content_type=request.content_type, dry_run=dry_run
                    )
                )
            raise method_not_allowed()
        if method == "GET":
            if q.get("watch") in ("true", "1"):
                return await self._watch(request, rtype, namespace, name)
            return self._maybe_table(request, rtype, self.emu.get(rtype, namespace, name))
        if method == "PUT":
            body = await self._body(request)
            replaced = self.emu.replace(
                rtype,
                namespace,
                name,
                body,
                subresource=sub,
                dry_run=dry_run,
                field_validation=validation,
                warnings=warnings,
            )
            return _json(replaced, 200, warnings)
        if method == "PATCH" and request.content_type == "application/apply-patch+yaml" and sub is None:
            if not q.get("fieldManager"):
                raise ApiError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                    "value: is required for apply patch",
                )
            body = await self._body(request)
            applied, code = self.emu.server_side_apply(
                rtype,
                namespace,
                name,
                body,
                dry_run=dry_run,
                field_validation=q.get("fieldValidation") or "Strict",
                warnings=warnings,
            )
            return _json(applied, code, warnings)
        if method == "PATCH":
            body = await self._body(request)
            patched = self.emu.patch(
                rtype,
                namespace,
                name,
                request.content_type,
                body,
                subresource=sub,
                dry_run=dry_run,
                field_validation=validation,
                warnings=warnings,
            )
            return _json(patched, 200, warnings)
        if method == "DELETE" and sub is None:
            options = await self._delete_options(request)
            obj, code = self.emu.delete(rtype, namespace, name, options, dry_run=dry_run)
            return _json(obj, code)
        raise method_not_allowed()

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            raise bad_request("the request has no body")
        try:
            return json.loads(raw)
        except ValueError as exc:
            if request.content_type in ("application/yaml", "application/apply-patch+yaml"):
                import yaml

                try:
                    return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                except yaml.YAMLError as yexc:
                    raise bad_request(f"the body is not valid YAML: {yexc}") from yexc
            if raw[:1] != b"{" and request.content_type.startswith("application/vnd.kubernetes.protobuf"):
                raise ApiError(
                    415, "UnsupportedMediaType", "protobuf bodies are not supported, only JSON"
                ) from exc
            raise bad_request(f"the body is not valid JSON: {exc}") from exc

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        options: dict[str, Any] = json.loads(raw) if raw.strip() else {}
        q = request.query
        if q.get("propagationPolicy"):
            options["propagationPolicy"] = q["propagationPolicy"]
        if q.get("gracePeriodSeconds"):
            options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        return options

    def _maybe_table(self, request: web.Request, rtype: ResourceType, body: dict[str, Any]) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "as=Table" in accept:
            return _json(to_table(rtype, body, request.query.get("includeObject", "Metadata")))
        return _json(body)

    def _log(self, rtype: ResourceType, namespace: str | None, name: str, q: Any) -> web.Response:
        pod = self.emu.get(rtype, namespace, name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = q.get("container") or (containers[0] if len(containers) == 1 else "")
        if not container and len(containers) > 1:
            raise bad_request(
                f"a container name must be specified for pod {name}, choose one of: {containers}"
            )
        text = self.emu.logs.get((namespace or "", name, container))
        if text is None:
            text = self.emu.logs.get((namespace or "", name, ""), "")
        if q.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(q["tailLines"]) :]) if int(q["tailLines"]) > 0 else ""
        if q.get("limitBytes"):
            text = text.encode()[: int(q["limitBytes"])].decode(errors="ignore")
        return web.Response(text=text, content_type="text/plain")

    # ------------------------------------------------------------ watch

    async def _watch(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str | None = None
    ) -> web.StreamResponse:
        q = request.query
        store = self.emu.store
        skey = rtype.store_key
        field_text = q.get("fieldSelector") or ""
        if name is not None:
            field_text = ",".join(x for x in (field_text, f"metadata.name={name}") if x)
        watch = Watch(
            namespace,
            LabelSelector.parse(q.get("labelSelector")),
            FieldSelector.parse(field_text, rtype.supports_field),
        )
        rv_text = q.get("resourceVersion") or ""
        send_initial = q.get("sendInitialEvents") == "true"
        bookmarks = q.get("allowWatchBookmarks") == "true"
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
        if rv_text and not rv_text.isdigit():
            raise bad_request(f'invalid resource version "{rv_text}"')
        # register before computing the backlog, with no await in between: no event can fall in a gap
        store.add_watch(skey, watch)
        gone = False
        if not rv_text or rv_text == "0" or send_initial:
            initial = [("ADDED", obj) for obj in store.items(skey, namespace) if watch.matches(obj)]
        else:
            events = store.events_since(skey, int(rv_text))
            if events is None:
                initial, gone = [], True
            else:
                initial = [seen for e in events if (seen := watch.translate(e)) is not None]
        initial_end_rv = str(store.rv)
        as_table = "as=Table" in request.headers.get("Accept", "")
        include = q.get("includeObject", "Metadata")

        def event(kind: str, obj: dict[str, Any]) -> bytes:
            body = self.emu._out(rtype, obj)
            if as_table:
                body = to_table(rtype, body, include)
            return dumps({"type": kind, "object": body}) + b"\n"

        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if gone:
                status = ApiError(
                    410, "Expired", f"too old resource version: {rv_text} ({store.compacted[skey]})"
                )
                await response.write(dumps({"type": "ERROR", "object": status.status()}) + b"\n")
                return response
            for kind, obj in initial:
                await response.write(event(kind, obj))
            if send_initial and bookmarks:
                await response.write(self._bookmark(rtype, initial_end_rv, initial_end=True))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            while not self.closing:
                wait = self.bookmark_interval if bookmarks else 3600.0
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        break
                try:
                    item = await asyncio.wait_for(watch.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and watch.queue.empty():
                        await response.write(self._bookmark(rtype, str(store.rv)))
                    continue
                if item is None:
                    break
                kind, obj = item
                await response.write(event(kind, obj))
        except ConnectionResetError:
            pass
        finally:
            store.remove_watch(skey, watch)
        return response

    def _bookmark(self, rtype: ResourceType, rv: str, *, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": rv}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return (
            dumps(
                {
                    "type": "BOOKMARK",
                    "object": {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta},
                }
            )
            + b"\n"
        )

    def close_watches(self) -> None:
        self.closing = True
        for watches in self.emu.store.watches.values():
            for watch in watches:
                watch.queue.put_nowait(None)
