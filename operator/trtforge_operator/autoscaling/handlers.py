"""kopf wiring of autoscaling: one daemon per ModelDeployment.

`trtforge operator` loads this module next to `trtforge_operator.handlers`. The daemon runs
`controller.run_autoscaling` on kopf's live body of the ModelDeployment, so a spec change takes effect
at the next tick without restarting anything:

- mode builtin (enabled): the built-in autoscaler ticks every tickSeconds and owns the Deployment's
  replicas;
- mode hpa / keda (enabled): the HorizontalPodAutoscaler / ScaledObject exists as an owned child and
  owns the replicas; the daemon only keeps that child in line with the spec;
- autoscaling disabled: no child, and the operator's Deployment reconciler applies spec.serving.replicas.

A mode change deletes the child of the previous mode. TRTFORGE_AUTOSCALER_MODES lists the modes with
children the operator serves (the chart's `autoscaler.hpa` / `autoscaler.keda`, which also grant their
RBAC): the kinds of the others are never requested, and a ModelDeployment asking for one is refused
(phase Failed through the operator's feasibility check; this daemon logs it once and waits).
TRTFORGE_AUTOSCALER_ENABLED=false (the chart's `autoscaler.enabled: false`, which also drops the HPA/KEDA
RBAC rules) turns all of this off, and the Deployment reconciler applies spec.serving.replicas. Children
go with the ModelDeployment through their owner references; the daemon itself stops when kopf stops it
(deletion, operator shutdown).
"""

from __future__ import annotations

from typing import Any

import kopf
from trtforge_runtime.spec.model import GROUP, PLURAL, VERSION

from trtforge_operator.apply import Kube
from trtforge_operator.autoscaling.children import ChildrenReconciler
from trtforge_operator.autoscaling.controller import AutoscalerController, run_autoscaling
from trtforge_operator.autoscaling.scrape import MetricsScraper
from trtforge_operator.settings import OperatorSettings

MEMO_KEY = "trtforge_autoscaling"


class AutoscalingContext:
    """What every daemon shares: the settings and one pooled API client."""

    def __init__(self, settings: OperatorSettings, kube: Kube) -> None:
        self.settings = settings
        self.kube = kube


@kopf.on.startup(id="autoscaling-startup")
async def autoscaling_startup(memo: kopf.Memo, **_: Any) -> None:
    memo[MEMO_KEY] = AutoscalingContext(OperatorSettings.from_env(), Kube.from_environment())


@kopf.on.cleanup(id="autoscaling-cleanup")
async def autoscaling_cleanup(memo: kopf.Memo, **_: Any) -> None:
    context = memo.get(MEMO_KEY)
    if isinstance(context, AutoscalingContext):
        context.kube.close()


@kopf.daemon(GROUP, VERSION, PLURAL, id="autoscaler", cancellation_timeout=10.0)
async def autoscaler_daemon(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    context = memo[MEMO_KEY]
    assert isinstance(context, AutoscalingContext) and namespace  # ModelDeployments are namespaced
    settings = context.settings
    if not settings.autoscaler_enabled:  # TRTFORGE_AUTOSCALER_ENABLED=false: no autoscaler of any mode
        return
    controller = AutoscalerController(
        context.kube,
        namespace=namespace,
        name=name,
        scraper=MetricsScraper(timeout=settings.autoscaler_scrape_timeout),
    )
    children = ChildrenReconciler(context.kube, settings.prometheus_url, modes=settings.autoscaler_modes)

    async def sleep(seconds: float) -> None:
        await stopped.wait(seconds)

    try:
        await run_autoscaling(
            lambda: body,
            lambda: bool(stopped),
            controller,
            children,
            sleep=sleep,
        )
    finally:
        await controller.close()
