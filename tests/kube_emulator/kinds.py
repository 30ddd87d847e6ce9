"""What the API server does for particular built-in kinds on create and update (defaults, validation).

Only behaviour that operators observe is emulated: Job selectors and pod-template labels, Deployment
and pod-spec defaults, Service cluster IPs, Namespace phase, the selector/template label match and the
immutability of Job templates and workload selectors.
"""

from __future__ import annotations

import itertools
from typing import Any

from kube_emulator.errors import FieldError
from kube_emulator.selectors import LabelSelector

_ips = itertools.count(10)


def _pod_spec_defaults(spec: dict[str, Any], restart_default: str | None) -> None:
    if restart_default and "restartPolicy" not in spec:
        spec["restartPolicy"] = restart_default
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = str(c.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
        c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        for port in c.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _template_errors(spec: dict[str, Any], prefix: str = "spec") -> list[FieldError]:
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        return [FieldError(f"{prefix}.selector", "FieldValueRequired", "Required value")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not LabelSelector.from_dict(selector).matches(labels):
        return [
            FieldError(
                f"{prefix}.template.metadata.labels",
                "FieldValueInvalid",
                f"Invalid value: {labels}: `selector` does not match template `labels`",
            )
        ]
    return []


def _containers_errors(pod_spec: dict[str, Any], prefix: str) -> list[FieldError]:
    containers = pod_spec.get("containers")
    if not containers:
        return [FieldError(f"{prefix}.containers", "FieldValueRequired", "Required value")]
    errs = []
    names = set()
    for i, c in enumerate(containers):
        if not c.get("name"):
            errs.append(FieldError(f"{prefix}.containers[{i}].name", "FieldValueRequired", "Required value"))
        elif c["name"] in names:
            errs.append(
                FieldError(
                    f"{prefix}.containers[{i}].name", "FieldValueDuplicate", f'Duplicate value: "{c["name"]}"'
                )
            )
        names.add(c.get("name"))
        if not c.get("image"):
            errs.append(FieldError(f"{prefix}.containers[{i}].image", "FieldValueRequired", "Required value"))
    return errs


def on_create(skey: tuple[str, str], obj: dict[str, Any]) -> list[FieldError]:
    """Defaults and create-time validation of built-in kinds; returns field errors."""
    spec = obj.setdefault("spec", {}) if skey in _HAS_SPEC else obj.get("spec")
    meta = obj["metadata"]
    if skey == ("", "namespaces"):
        assert spec is not None
        spec.setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    elif skey == ("", "pods"):
        assert spec is not None
        _pod_spec_defaults(spec, "Always")
        spec.setdefault("serviceAccountName", "default")
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        return _containers_errors(spec, "spec")
    elif skey == ("", "services"):
        assert spec is not None
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None":
            n = next(_ips)
            spec["clusterIP"] = spec.get("clusterIP") or f"10.96.{n // 250 % 250}.{n % 250 + 1}"
            spec["clusterIPs"] = [spec["clusterIP"]]
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj["status"] = {"loadBalancer": {}}
    elif skey == ("batch", "jobs"):
        assert spec is not None
        uid, name = meta["uid"], meta["name"]
        spec.setdefault("parallelism", 1)
        if spec.get("completionMode") != "Indexed" or "completions" not in spec:
            spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
            labels = tmeta.setdefault("labels", {})
            labels.update(
                {
                    "batch.kubernetes.io/controller-uid": uid,
                    "batch.kubernetes.io/job-name": name,
                    "controller-uid": uid,
                    "job-name": name,
                }
            )
        pod_spec = spec.setdefault("template", {}).setdefault("spec", {})
        _pod_spec_defaults(pod_spec, None)
        obj["status"] = {}
        errs = _containers_errors(pod_spec, "spec.template.spec")
        if pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            errs.append(
                FieldError(
                    "spec.template.spec.restartPolicy",
                    "FieldValueRequired",
                    'Required value: valid values: "OnFailure", "Never"',
                )
            )
        return errs
    elif skey in (
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
    ):
        assert spec is not None
        if skey != ("apps", "daemonsets"):
            spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if skey == ("apps", "deployments"):
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxSurge", "25%")
                ru.setdefault("maxUnavailable", "25%")
        pod_spec = spec.setdefault("template", {}).setdefault("spec", {})
        _pod_spec_defaults(pod_spec, "Always")
        obj["status"] = {}
        return _template_errors(spec) + _containers_errors(pod_spec, "spec.template.spec")
    elif skey in _STATUS_RESET:
        obj["status"] = {}
    return []


_HAS_SPEC = {
    ("", "namespaces"),
    ("", "pods"),
    ("", "services"),
    ("batch", "jobs"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
}
_STATUS_RESET = {
    ("policy", "poddisruptionbudgets"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("", "persistentvolumeclaims"),
}

_IMMUTABLE: dict[tuple[str, str], tuple[str, ...]] = {
    ("batch", "jobs"): ("selector", "template", "completions", "completionMode", "podFailurePolicy"),
    ("apps", "deployments"): ("selector",),
    ("apps", "replicasets"): ("selector",),
    ("apps", "statefulsets"): ("selector", "serviceName", "volumeClaimTemplates", "podManagementPolicy"),
    ("apps", "daemonsets"): ("selector",),
    ("", "services"): ("clusterIP",),
}


def on_update(skey: tuple[str, str], old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    """Update-time rules of built-in kinds: immutable fields, kept server-set fields, template checks."""
    errs: list[FieldError] = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec")
    if (
        skey == ("", "services")
        and isinstance(new_spec, dict)
        and "clusterIP" not in new_spec
        and ("clusterIP" in old_spec)
    ):
        new_spec["clusterIP"] = old_spec["clusterIP"]
        new_spec["clusterIPs"] = old_spec.get("clusterIPs")
    if skey == ("batch", "jobs") and isinstance(new_spec, dict) and not new_spec.get("manualSelector"):
        new_spec.setdefault("selector", old_spec.get("selector"))
        tmpl = new_spec.get("template")
        if isinstance(tmpl, dict):
            _pod_spec_defaults(tmpl.setdefault("spec", {}), None)
            labels = tmpl.setdefault("metadata", {}).setdefault("labels", {})
            for k, v in (
                ((old_spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            ).items():
                if k in (
                    "batch.kubernetes.io/controller-uid",
                    "batch.kubernetes.io/job-name",
                    "controller-uid",
                    "job-name",
                ):
                    labels.setdefault(k, v)
    if skey in (("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets")) and isinstance(
        new_spec, dict
    ):
        tmpl = new_spec.get("template")
        if isinstance(tmpl, dict):
            _pod_spec_defaults(tmpl.setdefault("spec", {}), "Always")
        errs += _template_errors(new_spec)
    for field in _IMMUTABLE.get(skey, ()):
        if isinstance(new_spec, dict) and new_spec.get(field) != old_spec.get(field):
            if skey == ("batch", "jobs") and field == "template" and old_spec.get("suspend"):
                continue
            errs.append(
                FieldError(
                    f"spec.{field}",
                    "FieldValueInvalid",
                    f"Invalid value: {new_spec.get(field)!r}: field is immutable",
                )
            )
    return errs
