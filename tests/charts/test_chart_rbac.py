"""RBAC of the chart: least privilege, no wildcards, scoped per watched namespace, and enough for every
kind of child the operator's reconcilers create."""

from __future__ import annotations

from pathlib import Path

import pytest
from charts.chartlib import (
    REPO,
    Helm,
    by_kind,
    env_of,
    grants,
    operator_children,
    operator_variants,
    rbac_wildcards,
    value_sets,
)

SETS = [None, *value_sets()]
IDS = ["default", *(p.stem for p in value_sets())]
VALUES = REPO / "tests" / "charts" / "values"

OWN = {"get", "list", "watch", "create", "patch", "delete"}
# exactly what the operator uses (tests/charts/test_chart_on_emulator.py checks a run against it)
NAMESPACED = {
    ("trtforge.dev", "modeldeployments"): {"get", "list", "watch", "patch"},
    ("trtforge.dev", "modeldeployments/status"): {"patch"},
    ("trtforge.dev", "modeldeployments/finalizers"): {"update"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("apps", "deployments/scale"): {"patch"},
    ("", "services"): {"get", "list", "watch", "create", "patch"},
    ("", "configmaps"): {"get", "list", "watch", "create", "delete"},
    ("policy", "poddisruptionbudgets"): OWN,
    ("", "pods"): {"list", "watch"},
    ("", "pods/log"): {"get"},
    ("", "events"): {"create"},
    ("", "persistentvolumeclaims"): {"get", "list", "watch", "create"},
}
# Secrets: only in the Roles of watched namespaces, never cluster-wide
SECRETS = {("", "secrets"): {"get"}}
HPA = {("autoscaling", "horizontalpodautoscalers"): OWN}
KEDA = {("keda.sh", "scaledobjects"): OWN}
CRDS = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
NAMESPACES = {("", "namespaces"): {"list", "watch"}}
LEASES = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}


def triples(rules: dict[tuple[str, str], set[str]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for (g, r), verbs in rules.items() for v in verbs}


@pytest.mark.parametrize("values", SETS, ids=IDS)
def test_no_wildcards(helm: Helm, values: Path | None) -> None:
    docs = helm.template(*([values] if values else []))
    assert by_kind(docs, "ClusterRole")
    assert rbac_wildcards(docs) == []


def test_wildcard_check_works() -> None:
    role = {
        "kind": "Role",
        "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}],
    }
    assert rbac_wildcards([role])


def test_cluster_wide_exact_rules(helm: Helm) -> None:
    docs = helm.template()
    assert grants(docs, "ClusterRole") == triples({**CRDS, **NAMESPACED, **HPA})
    assert [r["metadata"]["name"] for r in by_kind(docs, "Role")] == ["forge-trtforge-leader-election"]
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "forge-trtforge", "namespace": "trtforge-system"}
    ]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("keda.yaml", {**CRDS, **NAMESPACED, **KEDA}),
        ("no-autoscaler.yaml", {**CRDS, **NAMESPACED}),
        ("ha.yaml", {**CRDS, **NAMESPACED, **HPA}),
    ],
)
def test_optional_rules(helm: Helm, values: str, expected: dict[tuple[str, str], set[str]]) -> None:
    assert grants(helm.template(VALUES / values), "ClusterRole") == triples(expected)


def test_namespaced_roles(helm: Helm) -> None:
    docs = helm.template(VALUES / "namespaced.yaml")
    # cluster scope keeps only what kopf reads there: CRDs and namespace names; no workloads
    assert grants(docs, "ClusterRole") == triples({**CRDS, **NAMESPACES})
    roles = [r for r in by_kind(docs, "Role") if not r["metadata"]["name"].endswith("-leader-election")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ml-prod", "ml-staging"]
    for ns in ("ml-prod", "ml-staging"):
        assert grants(docs, "Role", ns) == triples({**NAMESPACED, **HPA, **SECRETS})
    bindings = [
        b for b in by_kind(docs, "RoleBinding") if not b["metadata"]["name"].endswith("-leader-election")
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ml-prod", "ml-staging"]
    for b in bindings:
        assert b["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "forge-trtforge",
        }
        assert b["subjects"][0]["namespace"] == "trtforge-system"


@pytest.mark.parametrize("values", ["ha.yaml", "ha-namespaced.yaml", "namespaced.yaml"])
def test_leader_election_rights_only_on_the_lease_in_the_release_namespace(helm: Helm, values: str) -> None:
    docs = helm.template(VALUES / values)
    assert grants(docs, "Role", "trtforge-system") >= LEASES
    role = next(r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader-election"))
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    assert not {t for t in grants(docs, "ClusterRole") if t[0] in ("kopf.dev", "coordination.k8s.io")}


def test_rbac_off(helm: Helm) -> None:
    docs = helm.template(sets=["rbac.create=false"])
    assert not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}]


@pytest.mark.parametrize("values", SETS, ids=IDS)
def test_rights_cover_every_child_the_operator_creates(helm: Helm, values: Path | None) -> None:
    """The reconcilers' output kinds must all be creatable, readable, watched and (unless immutable)
    patchable."""
    docs = helm.template(*([values] if values else []))
    env = env_of(by_kind(docs, "Deployment")[0])
    granted = grants(docs, "ClusterRole") | {
        t for ns in env["TRTFORGE_WATCH_NAMESPACES"].split(",") if ns for t in grants(docs, "Role", ns)
    }
    plural = {
        "Job": "jobs",
        "Deployment": "deployments",
        "Service": "services",
        "ConfigMap": "configmaps",
        "PodDisruptionBudget": "poddisruptionbudgets",
    }
    immutable = {"Job", "ConfigMap"}  # created once, never patched (a new revision is a new object)
    for _, manifest in operator_variants():
        for child in operator_children(env, manifest):
            group = child["apiVersion"].rpartition("/")[0]
            resource = plural[child["kind"]]
            needed = {"get", "list", "watch", "create"} | (set() if child["kind"] in immutable else {"patch"})
            for verb in needed:
                assert (group, resource, verb) in granted, (child["kind"], verb)
