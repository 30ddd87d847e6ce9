"""The hpa and keda modes' children: the HorizontalPodAutoscaler or ScaledObject a ModelDeployment wants.

Level-triggered and cheap: `reconcile` renders what the spec asks for (an HPA in hpa mode, a
ScaledObject in keda mode, neither otherwise), makes it exist through the operator's `apply.ensure`
(owner reference, create / patch / leave alone, never adopting a foreign object) and deletes the other
kind when this ModelDeployment owns one (the mode changed, or autoscaling was turned off). The operator
never touches the Deployment's replicas in these modes: the HPA (or KEDA's HPA) owns them, so nothing fights.

In the operator, `ChildCache` holds these children as the hpa / keda watches deliver them (every event
of such a child also triggers its owner's reconcile), so a reconcile reads them from there: a child that
is not wanted and not there costs no request (a builtin-mode object at rest asks nothing about HPAs or
ScaledObjects), one that is not wanted but there is deleted without a GET first, and a wanted one is
compared with its cached body (a create that conflicts reads it then).

The kinds of modes the operator does not serve (TRTFORGE_AUTOSCALER_MODES: what the cluster has and the
chart granted RBAC for) are never read, listed or deleted: on a real cluster that would be a 403. A spec
asking for such a mode is an AutoscalingError naming spec.serving.autoscaling.mode and the setting.
A cluster without KEDA answers 404 for ScaledObjects: that is an AutoscalingError naming the missing CRD.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from trtforge_runtime.spec.model import API_VERSION, KIND, Autoscaling

from trtforge_operator import apply, labels, naming
from trtforge_operator.autoscaling import hpa, keda
from trtforge_operator.errors import AutoscalingError, KubeApiError
from trtforge_operator.settings import ENV_VARS, mode_problem

HPA_KEY = ("autoscaling/v2", "HorizontalPodAutoscaler")
KEDA_KEY = (keda.API_VERSION, keda.KIND)
MODE_KEYS = {"hpa": HPA_KEY, "keda": KEDA_KEY}  # the child kind of each mode that has one
ALL_MODES = tuple(MODE_KEYS)
COMPONENT = "autoscaler"
MODES_SETTING = ENV_VARS["autoscaler_modes"]


def mode_disabled_error(mode: str, enabled: Collection[str]) -> AutoscalingError:
    return AutoscalingError(f"spec.serving.autoscaling.mode: {mode_problem(mode, enabled)}")


def desired_children(
    md: Mapping[str, Any], spec: Autoscaling, prometheus_url: str, modes: Collection[str] = ALL_MODES
) -> dict[tuple[str, str], dict[str, Any] | None]:
    """(apiVersion, kind) -> the desired manifest with its owner reference, or None (must not exist).

    Only the kinds of the enabled `modes` appear: the others are none of this operator's business.
    """
    meta = md["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    deployment = naming.predictor_name(name)
    child_labels = labels.common(name, COMPONENT)
    mode = str(spec.mode)
    if spec.enabled and mode in MODE_KEYS and mode not in modes:
        raise mode_disabled_error(mode, modes)
    out: dict[tuple[str, str], dict[str, Any] | None] = {
        key: None for m, key in MODE_KEYS.items() if m in modes
    }
    if spec.enabled and mode == "hpa":
        out[HPA_KEY] = hpa.render_hpa(
            name=deployment, namespace=namespace, deployment=deployment, spec=spec, labels=child_labels
        )
    elif spec.enabled and mode == "keda":
        out[KEDA_KEY] = keda.render_scaled_object(
            name=deployment,
            namespace=namespace,
            deployment=deployment,
            spec=spec,
            labels=child_labels,
            prometheus_url=prometheus_url,
        )
    reference = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for manifest in out.values():
        if manifest is not None:
            manifest["metadata"]["ownerReferences"] = [reference]
    return out


ChildKey = tuple[str, str]  # (apiVersion, kind)


class ChildCache:
    """The hpa / keda children as their watches last delivered them, by owner (namespace, name).

    Authoritative only for the modes `watch` named (the operator's watches of those kinds run): for any
    other kind `known` leaves it out and the reconcile asks the API.
    """

    def __init__(self) -> None:
        self._watched: tuple[str, ...] = ()
        self._objects: dict[tuple[str, str], dict[ChildKey, dict[str, Any]]] = {}

    def watch(self, modes: Collection[str]) -> None:
        self._watched = tuple(m for m in ALL_MODES if m in modes)

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event (ADDED / MODIFIED / DELETED, or None: listed) of an hpa / keda child."""
        meta = body.get("metadata") or {}
        owner = (str(meta.get("namespace")), str((meta.get("labels") or {}).get(labels.MODELDEPLOYMENT)))
        kind = (str(body.get("apiVersion")), str(body.get("kind")))
        children = self._objects.setdefault(owner, {})
        if event_type == "DELETED":
            children.pop(kind, None)
        else:
            children[kind] = dict(body)
        if not children:
            del self._objects[owner]

    def known(self, namespace: str, name: str) -> dict[ChildKey, dict[str, Any] | None]:
        """(apiVersion, kind) -> the cached child or None (absent), for the watched kinds only."""
        children = self._objects.get((namespace, name), {})
        return {MODE_KEYS[m]: children.get(MODE_KEYS[m]) for m in self._watched}


class ChildrenReconciler:
    """Keeps one ModelDeployment's HPA / ScaledObject in line with its spec.

    `modes`: the modes with children this operator serves (settings.autoscaler_modes); the kinds of the
    others are never requested.
    """

    def __init__(
        self,
        kube: apply.Kube,
        prometheus_url: str,
        *,
        modes: Collection[str] = ALL_MODES,
    ) -> None:
        unknown = set(modes) - set(ALL_MODES)
        if unknown:
            raise AutoscalingError(f"{MODES_SETTING}: unknown mode(s) {sorted(unknown)} (known: hpa, keda)")
        self.kube = kube
        self.prometheus_url = prometheus_url
        self.modes = tuple(m for m in ALL_MODES if m in modes)

    async def reconcile(
        self,
        md: Mapping[str, Any],
        spec: Autoscaling,
        known: Mapping[ChildKey, dict[str, Any] | None] | None = None,
    ) -> list[str]:
        """Creates, patches or deletes children; returns what it did (e.g. "created ScaledObject").

        `known`: the children of the kinds a watch keeps (`ChildCache.known`), None where absent; the
        API is read only for the kinds left out."""
        known = known or {}
        desired = desired_children(md, spec, self.prometheus_url, self.modes)
        if not desired:  # builtin only: no child kind to look after
            return []
        uid = md["metadata"]["uid"]
        namespace = md["metadata"]["namespace"]
        done: list[str] = []
        # the wanted child first: if it cannot be made, the previous mode's child keeps scaling meanwhile
        ordered = sorted(desired.items(), key=lambda item: item[1] is None)
        for (api_version, kind), manifest in ordered:
            if manifest is not None:
                existing = known.get((api_version, kind), apply.MISSING)  # MISSING: ask the API
                try:
                    action, _ = await apply.ensure(self.kube, manifest, owner_uid=uid, existing=existing)
                except KubeApiError as exc:
                    if exc.status == 404:
                        raise AutoscalingError(
                            f"the cluster has no {kind} ({api_version}) API: install "
                            f"{'KEDA' if kind == keda.KIND else 'autoscaling/v2'} or choose another "
                            "spec.serving.autoscaling.mode"
                        ) from None
                    raise
                if action is not apply.Action.UNCHANGED:
                    done.append(f"{action.value} {kind}")
            else:
                name = naming.predictor_name(md["metadata"]["name"])
                if (api_version, kind) in known:
                    existing = known[(api_version, kind)]
                else:
                    existing = await self.kube.get(api_version, kind, namespace, name)
                if await apply.remove(self.kube, api_version, kind, existing, uid):
                    done.append(f"deleted {kind}")
        return done
