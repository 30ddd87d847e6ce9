"""The kinds the emulator serves: built-in kinds declared here, custom ones registered from CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Fields every kind accepts in a fieldSelector; per-kind extras below (as in the real API server).
COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)
EXTRA_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset(
        {
            "status.phase",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    ("", "events"): EVENT_FIELDS,
    ("events.k8s.io", "events"): frozenset(
        {"regarding.kind", "regarding.name", "regarding.namespace", "reason"}
    ),
    ("", "secrets"): frozenset({"type"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("batch", "jobs"): frozenset({"status.successful"}),
    ("apps", "replicasets"): frozenset({"status.replicas"}),
}


@dataclass(frozen=True)
class ScaleSpec:
    """Where a kind keeps the fields of its scale subresource (dotted paths without a leading dot)."""

    spec_replicas: str
    status_replicas: str
    label_selector: str | None  # None: taken from spec.selector (built-in workloads)


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False
    scale: ScaleSpec | None = None
    subresources: tuple[str, ...] = ()  # extra ones, e.g. ("log",) for pods
    printer_columns: list[dict[str, Any]] | None = None  # CRD additionalPrinterColumns
    schema: dict[str, Any] | None = None  # CRD openAPIV3Schema (None: not validated)
    crd: str | None = None  # name of the CRD that declared it
    selectable_fields: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def store_key(self) -> tuple[str, str]:
        """Objects are stored per (group, plural), whatever version they are served as."""
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def supports_field(self, name: str) -> bool:
        return (
            name in COMMON_FIELDS
            or name in EXTRA_FIELDS.get(self.store_key, frozenset())
            or name in self.selectable_fields
        )

    def verbs(self) -> list[str]:
        if self.plural.endswith("accessreviews"):
            return ["create"]
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    def discovery(self) -> list[dict[str, Any]]:
        """The APIResourceList entries of this kind and its subresources."""
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs(),
            "storageVersionHash": "",
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        out = [main]
        if self.status:
            out.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if self.scale:
            out.append(
                {
                    "name": f"{self.plural}/scale",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
        for sub in self.subresources:
            out.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": sub.title(),
                    "verbs": ["get"],
                }
            )
        return out


_WORKLOAD_SCALE = ScaleSpec("spec.replicas", "status.replicas", None)


def builtin_types() -> list[ResourceType]:
    """The built-in kinds: enough of core, apps, batch, policy, autoscaling, rbac, coordination, events."""
    rt = ResourceType
    return [
        rt("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), status=True),
        rt("", "v1", "nodes", "Node", namespaced=False, short_names=("no",), status=True),
        rt("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
        rt("", "v1", "secrets", "Secret"),
        rt("", "v1", "services", "Service", short_names=("svc",), status=True, categories=("all",)),
        rt("", "v1", "endpoints", "Endpoints", short_names=("ep",)),
        rt(
            "",
            "v1",
            "pods",
            "Pod",
            short_names=("po",),
            status=True,
            categories=("all",),
            subresources=("log",),
        ),
        rt("", "v1", "events", "Event", short_names=("ev",)),
        rt("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
        rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), status=True),
        rt(
            "",
            "v1",
            "persistentvolumes",
            "PersistentVolume",
            namespaced=False,
            short_names=("pv",),
            status=True,
        ),
        rt("batch", "v1", "jobs", "Job", status=True, categories=("all",)),
        rt("batch", "v1", "cronjobs", "CronJob", short_names=("cj",), status=True, categories=("all",)),
        rt(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            short_names=("deploy",),
            status=True,
            scale=_WORKLOAD_SCALE,
            categories=("all",),
        ),
        rt(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            short_names=("rs",),
            status=True,
            scale=_WORKLOAD_SCALE,
            categories=("all",),
        ),
        rt(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            short_names=("sts",),
            status=True,
            scale=_WORKLOAD_SCALE,
            categories=("all",),
        ),
        rt("apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",), status=True, categories=("all",)),
        rt("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",), status=True),
        rt(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            short_names=("hpa",),
            status=True,
            categories=("all",),
        ),
        rt("coordination.k8s.io", "v1", "leases", "Lease"),
        rt("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
        rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
        rt("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",), status=True),
        rt("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)),
        rt("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
        rt(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            namespaced=False,
        ),
        rt("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", namespaced=False),
        rt(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            short_names=("crd", "crds"),
            status=True,
        ),
    ]


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subs = version.get("subresources") or {}
        scale = None
        if "scale" in subs and subs["scale"] is not None:
            s = subs["scale"]
            scale = ScaleSpec(
                s["specReplicasPath"].lstrip("."),
                s["statusReplicasPath"].lstrip("."),
                (s.get("labelSelectorPath") or "").lstrip(".") or None,
            )
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        selectable = frozenset(f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or [])
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", ""),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status="status" in subs,
                scale=scale,
                printer_columns=version.get("additionalPrinterColumns"),
                schema=schema,
                crd=crd["metadata"]["name"],
                selectable_fields=selectable,
            )
        )
    return out


class Registry:
    """The served kinds, looked up by URL parts (group, version, plural) and listed for discovery."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}

    def add(self, rtype: ResourceType) -> None:
        self._types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        gone = [t for t in self._types.values() if t.crd == crd_name]
        for t in gone:
            del self._types[(t.group, t.version, t.plural)]
        return gone

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for t in self._types.values():
            if t.api_version == api_version and t.kind == kind:
                return t
        return None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> served versions (core "" included), in registration order."""
        out: dict[str, list[str]] = {}
        for t in self._types.values():
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and t.version == version]
