"""hpa / keda modes against the emulator: the children follow the mode, are owned, and are valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from trtforge_operator.apply import Kube as ApiKube
from trtforge_operator.autoscaling.children import ChildCache, ChildrenReconciler
from trtforge_operator.autoscaling.controller import parse_autoscaling
from trtforge_operator.errors import AutoscalingError, ChildConflictError
from trtforge_runtime.spec.model import API_VERSION, KIND

REPO = Path(__file__).resolve().parents[3]
NS = "ml"
CHILD = "digits-predictor"
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")
SO = ("keda.sh/v1alpha1", "ScaledObject")


def create_md(cluster: Any, **autoscaling: Any) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    doc["metadata"]["namespace"] = NS
    doc["spec"]["serving"]["autoscaling"].update(autoscaling)
    return dict(cluster.create(doc))


def set_autoscaling(cluster: Any, **fields: Any) -> dict[str, Any]:
    patch = {"spec": {"serving": {"autoscaling": fields}}}
    return dict(cluster.patch(API_VERSION, KIND, "digits", patch, NS))


@pytest.mark.asyncio
async def test_children_follow_the_mode(cluster: Any) -> None:
    kube = ApiKube(cluster.client())
    children = ChildrenReconciler(kube, "http://prometheus.monitoring.svc:9090")

    async def reconcile(md: dict[str, Any]) -> list[str]:
        return await children.reconcile(md, parse_autoscaling(md))

    md = create_md(cluster, mode="hpa", minReplicas=2, maxReplicas=6, target=8)
    assert await reconcile(md) == ["created HorizontalPodAutoscaler"]
    hpa = cluster.get(*HPA, CHILD, NS)
    assert hpa["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
    assert hpa["metadata"]["labels"]["trtforge.dev/modeldeployment"] == "digits"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "digits-predictor"
    stored = {k: hpa[k] for k in ("apiVersion", "kind", "spec")}
    stored["metadata"] = {k: hpa["metadata"][k] for k in ("name", "namespace", "labels", "ownerReferences")}
    kubernetes_validate.validate(stored, "1.35.0", strict=True)

    assert await reconcile(md) == []  # nothing changed: no write
    md = set_autoscaling(cluster, target=4)
    assert await reconcile(md) == ["patched HorizontalPodAutoscaler"]
    metric = cluster.get(*HPA, CHILD, NS)["spec"]["metrics"][0]["pods"]
    assert metric["target"]["averageValue"] == "4"

    # keda without KEDA installed: a clear error, and the HPA keeps scaling meanwhile
    md = set_autoscaling(cluster, mode="keda")
    with pytest.raises(AutoscalingError, match=r"no ScaledObject \(keda.sh/v1alpha1\) API"):
        await reconcile(md)
    assert cluster.get(*HPA, CHILD, NS) is not None

    cluster.install_keda_crd()
    assert await reconcile(md) == ["created ScaledObject", "deleted HorizontalPodAutoscaler"]
    so = cluster.get(*SO, CHILD, NS)
    assert so["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
    trigger = so["spec"]["triggers"][0]
    assert trigger["metadata"]["serverAddress"] == "http://prometheus.monitoring.svc:9090"
    assert trigger["metadata"]["threshold"] == "4"
    assert cluster.get(*HPA, CHILD, NS) is None

    md = set_autoscaling(cluster, mode="builtin")
    assert await reconcile(md) == ["deleted ScaledObject"]
    assert cluster.get(*SO, CHILD, NS) is None and cluster.get(*HPA, CHILD, NS) is None

    md = set_autoscaling(cluster, mode="hpa", enabled=False)
    assert await reconcile(md) == []
    assert cluster.get(*HPA, CHILD, NS) is None
    kube.close()


@pytest.mark.asyncio
async def test_a_foreign_object_is_never_adopted_or_deleted(cluster: Any) -> None:
    cluster.create(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": CHILD, "namespace": NS},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"},
                "maxReplicas": 3,
            },
        }
    )
    kube = ApiKube(cluster.client())
    children = ChildrenReconciler(kube, "http://prometheus:9090")
    md = create_md(cluster, mode="builtin")
    assert await children.reconcile(md, parse_autoscaling(md)) == []  # not ours: left alone
    md = set_autoscaling(cluster, mode="hpa")
    with pytest.raises(ChildConflictError, match="not owned by this ModelDeployment"):
        await children.reconcile(md, parse_autoscaling(md))
    assert cluster.get(*HPA, CHILD, NS)["spec"]["scaleTargetRef"]["name"] == "other"
    kube.close()


@pytest.mark.asyncio
async def test_modes_the_operator_does_not_serve_are_never_requested(cluster: Any) -> None:
    """TRTFORGE_AUTOSCALER_MODES="" (builtin only): no GET/LIST/DELETE of HPAs or ScaledObjects (403 on a
    cluster whose chart granted no such RBAC), and a spec asking for hpa is refused naming field and
    setting."""
    kube = ApiKube(cluster.client())
    children = ChildrenReconciler(kube, "http://prometheus:9090", modes=())
    md = create_md(cluster, mode="builtin")
    assert await children.reconcile(md, parse_autoscaling(md)) == []
    md = set_autoscaling(cluster, enabled=False)
    assert await children.reconcile(md, parse_autoscaling(md)) == []
    md = set_autoscaling(cluster, enabled=True, mode="hpa")
    with pytest.raises(AutoscalingError) as info:
        await children.reconcile(md, parse_autoscaling(md))
    message = str(info.value)
    assert message.startswith("spec.serving.autoscaling.mode: mode 'hpa' is not enabled")
    assert "TRTFORGE_AUTOSCALER_MODES=''" in message
    assert kube.requests == 0
    assert cluster.get(*HPA, CHILD, NS) is None

    # hpa only: ScaledObjects are never looked at, even when the mode goes back to builtin
    children = ChildrenReconciler(kube, "http://prometheus:9090", modes=("hpa",))
    assert await children.reconcile(md, parse_autoscaling(md)) == ["created HorizontalPodAutoscaler"]
    md = set_autoscaling(cluster, mode="keda")
    with pytest.raises(AutoscalingError, match="TRTFORGE_AUTOSCALER_MODES='hpa'"):
        await children.reconcile(md, parse_autoscaling(md))
    assert cluster.get(*HPA, CHILD, NS) is not None  # the previous mode's HPA keeps scaling meanwhile
    md = set_autoscaling(cluster, mode="builtin")
    assert await children.reconcile(md, parse_autoscaling(md)) == ["deleted HorizontalPodAutoscaler"]
    kube.close()


def test_unknown_mode_setting_is_refused() -> None:
    with pytest.raises(AutoscalingError, match="unknown mode"):
        ChildrenReconciler(ApiKube(None), "http://prometheus:9090", modes=("kpa",))


def test_child_cache_follows_the_watch_events() -> None:
    cache = ChildCache()
    hpa = {
        "apiVersion": HPA[0],
        "kind": HPA[1],
        "metadata": {"name": CHILD, "namespace": NS, "labels": {"trtforge.dev/modeldeployment": "digits"}},
    }
    cache.observe(None, hpa)  # listed before any mode is watched: kept, not yet authoritative
    assert cache.known(NS, "digits") == {}
    cache.watch(("keda", "hpa"))
    assert cache.known(NS, "digits") == {HPA: hpa, SO: None}
    assert cache.known(NS, "other") == {HPA: None, SO: None}
    cache.observe("DELETED", hpa)
    assert cache.known(NS, "digits") == {HPA: None, SO: None}
    cache.watch(("hpa",))
    assert cache.known(NS, "digits") == {HPA: None}


@pytest.mark.asyncio
async def test_known_children_are_not_read_again(cluster: Any) -> None:
    """With the watch cache's view, an absent unwanted child costs no request, a present one is deleted
    without a GET first, and a wanted one is created from the cached absence."""
    kube = ApiKube(cluster.client())
    children = ChildrenReconciler(kube, "http://prometheus:9090", modes=("hpa",))
    md = create_md(cluster, mode="builtin")
    before = kube.requests
    assert await children.reconcile(md, parse_autoscaling(md), {HPA: None}) == []
    assert kube.requests == before  # no request at all

    md = set_autoscaling(cluster, mode="hpa")
    assert await children.reconcile(md, parse_autoscaling(md), {HPA: None}) == [
        "created HorizontalPodAutoscaler"
    ]
    assert kube.requests == before + 1  # the create only
    hpa = cluster.get(*HPA, CHILD, NS)
    assert await children.reconcile(md, parse_autoscaling(md), {HPA: hpa}) == []
    assert kube.requests == before + 1

    md = set_autoscaling(cluster, mode="builtin")
    assert await children.reconcile(md, parse_autoscaling(md), {HPA: hpa}) == [
        "deleted HorizontalPodAutoscaler"
    ]
    assert kube.requests == before + 2  # the DELETE only
    assert cluster.get(*HPA, CHILD, NS) is None
    kube.close()
