"""The built-in autoscaler's thin I/O layer: one controller per ModelDeployment, one tick at a time.

Each tick: read the serving Deployment (`<name>-predictor`), list its ready pods by the Deployment's
selector, scrape their `/metrics` (pod IP; the container port named http, else the `prometheus.io/port`
annotation, else 8080; the `prometheus.io/path` annotation, else /metrics), feed the pure `Autoscaler`,
and on a change write the Deployment's replicas through its scale subresource,
`status.serving.desiredReplicas` of the ModelDeployment, and a Kubernetes Event that says why (observed
value, target, window).

The Kubernetes calls go through the operator's `apply.Kube` (the official client in a thread, JSON dicts).
The clock is injected, so a benchmark can drive ticks on simulated time against real endpoints.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from trtforge_runtime.spec.model import API_VERSION, KIND, Autoscaling

from trtforge_operator import events, naming
from trtforge_operator.apply import Kube
from trtforge_operator.autoscaling.algorithm import (
    Autoscaler,
    AutoscalerConfig,
    Decision,
    RateTracker,
    aggregate,
)
from trtforge_operator.autoscaling.children import ChildrenReconciler
from trtforge_operator.autoscaling.scrape import (
    INFLIGHT_METRIC,
    REQUESTS_METRIC,
    MetricsScraper,
    PodScrape,
    ScrapeTarget,
)
from trtforge_operator.errors import AutoscalingError

log = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 8080
DEFAULT_METRICS_PATH = "/metrics"
PORT_ANNOTATION = "prometheus.io/port"
METRICS_PORT_NAMES = ("http", "metrics")
PATH_ANNOTATION = "prometheus.io/path"
EVENT_SOURCE = "trtforge-autoscaler"


def parse_autoscaling(md: Mapping[str, Any]) -> Autoscaling:
    """spec.serving.autoscaling of a ModelDeployment body, with defaults; AutoscalingError if invalid."""
    raw = ((md.get("spec") or {}).get("serving") or {}).get("autoscaling") or {}
    try:
        return Autoscaling.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AutoscalingError(
            f"spec.serving.autoscaling{'.' + where if where else ''}: {first['msg']}"
        ) from None


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Running, Ready=True, with an IP, and not being deleted."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or not status.get("podIP") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def metrics_port(pod: Mapping[str, Any], default_port: int = DEFAULT_METRICS_PORT) -> int:
    """The runtime's HTTP port: the container port named http (or metrics), else the prometheus.io/port
    annotation, else 8080."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") in METRICS_PORT_NAMES and port.get("containerPort"):
                return int(port["containerPort"])
    annotation = str(((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION) or "")
    return int(annotation) if annotation.isdigit() else default_port


def metrics_url(pod: Mapping[str, Any], default_port: int = DEFAULT_METRICS_PORT) -> str:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    path = str(annotations.get(PATH_ANNOTATION) or DEFAULT_METRICS_PATH)
    if not path.startswith("/"):
        path = "/" + path
    ip = str(pod["status"]["podIP"])
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{metrics_port(pod, default_port)}{path}"


def event_manifest(md: Mapping[str, Any], reason: str, message: str, kind: str = "Normal") -> dict[str, Any]:
    """A core/v1 Event about the ModelDeployment `md` from the autoscaler."""
    return events.event_manifest(md, kind, reason, message, component=EVENT_SOURCE)


@dataclass
class TickResult:
    """What one tick saw and did (for logs, tests and the benchmark)."""

    decision: Decision | None
    deployment_replicas: int | None = None
    scrapes: list[PodScrape] = field(default_factory=list)
    scaled: bool = False
    skipped: str | None = None  # why no decision was taken
    scrape_seconds: float = 0.0


class AutoscalerController:
    """The built-in autoscaler of one ModelDeployment."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        scraper: MetricsScraper | None = None,
        clock: Callable[[], float] = time.monotonic,
        default_port: int = DEFAULT_METRICS_PORT,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.deployment_name = naming.predictor_name(name)
        self.scraper = scraper or MetricsScraper()
        self.clock = clock
        self.default_port = default_port
        self.autoscaler: Autoscaler | None = None
        self.rates = RateTracker()
        self._problems: dict[str, str] = {}
        self._written_desired: int | None = None

    async def close(self) -> None:
        await self.scraper.close()

    async def tick(self, md: Mapping[str, Any]) -> TickResult:
        """One round: observe, decide, and write when the decision changed the count."""
        spec = parse_autoscaling(md)
        if not spec.enabled or str(spec.mode) != "builtin":
            self.autoscaler = None  # a later re-enable starts from the Deployment's count again
            return TickResult(
                None, skipped=f"autoscaling {'mode ' + str(spec.mode) if spec.enabled else 'off'}"
            )
        config = AutoscalerConfig.from_spec(spec)

        deployment = await self.kube.get("apps/v1", "Deployment", self.namespace, self.deployment_name)
        if deployment is None:
            return TickResult(None, skipped=f"deployment {self.deployment_name} does not exist yet")
        raw = (deployment.get("spec") or {}).get("replicas")
        current = int(raw) if raw is not None else 1
        if self.autoscaler is None:
            self.autoscaler = Autoscaler(config, initial_replicas=current)
        else:
            self.autoscaler.reconfigure(config)
            if current != self.autoscaler.desired:
                # someone else set the count (the operator creating the Deployment, a rollback): adopt it
                self.autoscaler.reset_replicas(current, self.clock())

        selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = [p for p in await self.kube.list("v1", "Pod", self.namespace, label_selector) if is_ready(p)]
        targets = [ScrapeTarget(p["metadata"]["name"], metrics_url(p, self.default_port)) for p in pods]
        started = time.perf_counter()
        sample = INFLIGHT_METRIC if str(spec.metric) == "concurrency" else REQUESTS_METRIC
        scrapes = await self.scraper.scrape(targets, sample) if targets else []
        scrape_seconds = time.perf_counter() - started
        now = self.clock()
        self._report_problems(scrapes)

        values: Mapping[str, float | None] = {s.pod: s.value for s in scrapes}
        if str(spec.metric) == "rps":
            values = self.rates.update(now, values)
        observation = aggregate(values, config.target) if scrapes else None
        decision = self.autoscaler.update(now, observation)

        result = TickResult(decision, current, scrapes, scrape_seconds=scrape_seconds)
        if decision.desired != current:
            await self.kube.patch(
                "apps/v1",
                "Deployment",
                self.namespace,
                self.deployment_name,
                {"spec": {"replicas": decision.desired}},
                sub="scale",
            )
            result.scaled = True
            log.info("%s/%s: %s", self.namespace, self.name, decision.message)
            await self._write_desired(decision.desired)
            await self.kube.create(event_manifest(md, decision.reason, decision.message))
        elif self._written_desired != decision.desired:
            await self._write_desired(decision.desired)
        return result

    async def _write_desired(self, replicas: int) -> None:
        patch = {"status": {"serving": {"desiredReplicas": replicas}}}
        await self.kube.patch(API_VERSION, KIND, self.namespace, self.name, patch, sub="status")
        self._written_desired = replicas

    def _report_problems(self, scrapes: list[PodScrape]) -> None:
        """A warning when a pod's metrics become unusable (or change problem), not on every tick."""
        seen = set()
        for s in scrapes:
            seen.add(s.pod)
            if s.problem is None:
                if self._problems.pop(s.pod, None) is not None:
                    log.info("%s/%s: pod %s metrics usable again", self.namespace, self.name, s.pod)
            elif self._problems.get(s.pod) != s.problem:
                self._problems[s.pod] = s.problem
                log.warning(
                    "%s/%s: pod %s metrics ignored (counted as at target): %s",
                    self.namespace,
                    self.name,
                    s.pod,
                    s.problem,
                )
        for pod in set(self._problems) - seen:
            del self._problems[pod]


IDLE_PERIOD_SECONDS = 5.0  # how often a ModelDeployment without the built-in autoscaler is re-checked


async def run_autoscaling(
    body: Callable[[], Mapping[str, Any]],
    stopped: Callable[[], bool],
    controller: AutoscalerController,
    children: ChildrenReconciler | None = None,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """The per-ModelDeployment loop: keep the hpa/keda children in line, tick the built-in autoscaler.

    `body()` returns the current ModelDeployment (kopf's live body in the daemon). Every error is logged
    once (until it changes) and the loop carries on at the next period: never fatal, never hot.
    """
    last_error: str | None = None
    where = f"{controller.namespace}/{controller.name}"
    while not stopped():
        started = time.monotonic()
        period = IDLE_PERIOD_SECONDS
        try:
            md = body()
            spec = parse_autoscaling(md)
            if children is not None:
                for action in await children.reconcile(md, spec):
                    log.info("%s: %s", where, action)
            if spec.enabled and str(spec.mode) == "builtin":
                result = await controller.tick(md)
                # no Deployment yet (training, converting): look again at the idle pace
                period = spec.tick_seconds if result.decision is not None else IDLE_PERIOD_SECONDS
            last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # configuration, API or network trouble: report, retry next period
            message = str(exc) if isinstance(exc, AutoscalingError) else f"{type(exc).__name__}: {exc}"
            if message != last_error:
                log.warning("%s: autoscaling: %s", where, message)
            last_error = message
        await sleep(max(0.0, period - (time.monotonic() - started)))
