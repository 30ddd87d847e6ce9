"""The built-in autoscaler's thin I/O layer: one operator-level loop, one decision per object and tick.

`AutoscalingLoop` runs on the leader only (see `lifecycle`). Every tickSeconds of each ModelDeployment
in builtin mode that has a serving Deployment (both as kopf's watches delivered them: no polling of
either), its `AutoscalerController` takes the Deployment's ready pods (by its selector) from the pod
watch's cache (no request either), scrapes their
`/metrics` (pod IP; the container port named http, else the `prometheus.io/port` annotation, else 8080;
the `prometheus.io/path` annotation, else /metrics) and feeds the pure `Autoscaler`. A decision that
changes the count is handed to the reconcile queue (`decisions[key]`, then `trigger(key)`); the
ModelDeployment's one reconcile (`Pipeline`) applies it with `apply_decision`: the Deployment's replicas
through its scale subresource, `status.serving.desiredReplicas`, and a Kubernetes Event that says why
(observed value, target, window). ModelDeployments in other modes, or not serving yet, cost nothing.

The clock is injected, so a benchmark can drive ticks on simulated time against real endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from trtforge_runtime.spec.model import Autoscaling

from trtforge_operator import events, naming
from trtforge_operator.apply import Kube
from trtforge_operator.autoscaling.algorithm import (
    Autoscaler,
    AutoscalerConfig,
    Decision,
    LastKnown,
    RateTracker,
    aggregate,
)
from trtforge_operator.autoscaling.scrape import (
    INFLIGHT_METRIC,
    REQUESTS_METRIC,
    MetricsScraper,
    PodScrape,
    ScrapeTarget,
)
from trtforge_operator.errors import AutoscalingError, KubeApiError
from trtforge_operator.settings import OperatorSettings

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


def selected(pod: Mapping[str, Any], match_labels: Mapping[str, str]) -> bool:
    """The pod carries every label of the Deployment's selector."""
    pod_labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(pod_labels.get(k) == v for k, v in match_labels.items())


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


_GET: Any = object()


@dataclass
class TickResult:
    """What one tick saw and did (for logs, tests and the benchmark)."""

    decision: Decision | None
    deployment_replicas: int | None = None
    scrapes: list[PodScrape] = field(default_factory=list)
    scaled: bool = False  # the decision changes the Deployment's count
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
        self.last_known = LastKnown()
        self._problems: dict[str, str] = {}

    async def close(self) -> None:
        await self.scraper.close()

    async def tick(
        self,
        md: Mapping[str, Any],
        deployment: Mapping[str, Any] | None = _GET,
        pods: Collection[Mapping[str, Any]] = _GET,
    ) -> TickResult:
        """One round: observe and decide (nothing is written; see `apply_decision`).

        `deployment`: the serving Deployment as last seen (the loop passes kopf's cached body); `pods`:
        the ModelDeployment's serving pods as last seen (the loop's pod watch cache); each left out is
        read from the API."""
        spec = parse_autoscaling(md)
        if not spec.enabled or str(spec.mode) != "builtin":
            self.autoscaler = None  # a later re-enable starts from the Deployment's count again
            return TickResult(
                None, skipped=f"autoscaling {'mode ' + str(spec.mode) if spec.enabled else 'off'}"
            )
        config = AutoscalerConfig.from_spec(spec)
        if deployment is _GET:
            deployment = await self.kube.get("apps/v1", "Deployment", self.namespace, self.deployment_name)
        if deployment is None:
            return TickResult(None, skipped=f"deployment {self.deployment_name} does not exist yet")
        raw = (deployment.get("spec") or {}).get("replicas")
        current = int(raw) if raw is not None else 1
        if self.autoscaler is None:
            self.autoscaler = Autoscaler(config, initial_replicas=current)
        else:
            self.autoscaler.reconfigure(config)
            # a count set from outside is adopted; one only behind our own decision is not
            self.autoscaler.observe_replicas(current, self.clock())

        selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if pods is _GET:
            label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            pods = await self.kube.list("v1", "Pod", self.namespace, label_selector)
        ready = [p for p in pods if selected(p, selector) and is_ready(p)]
        targets = [ScrapeTarget(p["metadata"]["name"], metrics_url(p, self.default_port)) for p in ready]
        started = time.perf_counter()
        sample = INFLIGHT_METRIC if str(spec.metric) == "concurrency" else REQUESTS_METRIC
        scrapes = await self.scraper.scrape(targets, sample) if targets else []
        scrape_seconds = time.perf_counter() - started
        now = self.clock()
        self._report_problems(scrapes)

        values: Mapping[str, float | None] = {s.pod: s.value for s in scrapes}
        if str(spec.metric) == "rps":
            values = self.rates.update(now, values)
        values = self.last_known.fill(now, values, config.stable_window)
        observation = aggregate(values, config.target) if scrapes else None
        decision = self.autoscaler.update(now, observation)
        result = TickResult(decision, current, scrapes, scrape_seconds=scrape_seconds)
        result.scaled = decision.desired != current
        return result

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
                    "%s/%s: pod %s metrics unusable (counted as its last value, else at target): %s",
                    self.namespace,
                    self.name,
                    s.pod,
                    s.problem,
                )
        for pod in set(self._problems) - seen:
            del self._problems[pod]


Key = tuple[str, str]  # (namespace, name)
Decisions = dict[Key, Decision]  # decided, not yet applied counts: the loop writes, the reconcile applies
LOOP_PERIOD_SECONDS = 0.25  # how often the loop looks for due ticks


async def apply_decision(kube: Kube, md: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """Write a decided count: the Deployment's scale subresource and an Event saying why.

    Called by the ModelDeployment's reconcile (status.serving.desiredReplicas goes with its status
    write); returns the Scale object."""
    meta = md["metadata"]
    scale = await kube.patch(
        "apps/v1",
        "Deployment",
        meta["namespace"],
        naming.predictor_name(meta["name"]),
        {"spec": {"replicas": decision.desired}},
        sub="scale",
    )
    log.info("%s/%s: %s", meta["namespace"], meta["name"], decision.message)
    try:
        await kube.create(event_manifest(md, decision.reason, decision.message))
    except KubeApiError as exc:
        log.warning("cannot post event %s for %s: %s", decision.reason, meta["name"], exc)
    return scale


class AutoscalingLoop:
    """The one operator-level autoscaler: ticks every builtin-mode ModelDeployment when it is due.

    `modeldeployments`, `deployments` and `pods` are the watch caches (kopf's latest bodies by owner key);
    a decision that changes a count goes into `decisions` and `trigger(key)` queues the reconcile that
    applies it. An error is logged once per object (until it changes), never fatal, never hot.
    """

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        *,
        modeldeployments: Mapping[Key, Mapping[str, Any]],
        deployments: Mapping[Key, Mapping[str, Any]],
        decisions: Decisions,
        pods: Mapping[Key, Mapping[str, Mapping[str, Any]]] | None = None,
        trigger: Callable[[Key], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.modeldeployments = modeldeployments
        self.deployments = deployments
        self.pods = pods  # the serving pods by owner (a watch cache); None: listed from the API each tick
        self.decisions = decisions
        self.trigger = trigger
        self.clock = clock
        self.scraper = MetricsScraper(timeout=settings.autoscaler_scrape_timeout)
        self.controllers: dict[Key, AutoscalerController] = {}
        self._due: dict[Key, float] = {}
        self._errors: dict[Key, str] = {}
        self._specs: dict[Key, tuple[str, Autoscaling | AutoscalingError]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run())

    def cancel(self) -> None:
        """Stop ticking at once (leadership lost); the algorithms' state starts afresh next time."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.controllers.clear()
        self._due.clear()
        self.decisions.clear()

    async def stop(self) -> None:
        task = self._task
        self.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.scraper.close()

    async def run(self) -> None:
        while True:
            await self.tick_due()
            await asyncio.sleep(LOOP_PERIOD_SECONDS)

    async def tick_due(self) -> None:
        """Tick every ModelDeployment whose period has passed, concurrently."""
        now = self.clock()
        due = []
        for key, md in list(self.modeldeployments.items()):
            spec = self._spec(key, md)
            if isinstance(spec, AutoscalingError):
                self._report(key, str(spec))
                continue
            if not spec.enabled or str(spec.mode) != "builtin" or key not in self.deployments:
                self.controllers.pop(key, None)
                self._due.pop(key, None)
                continue
            if now < self._due.get(key, 0.0):
                continue
            self._due[key] = now + spec.tick_seconds
            due.append(self._tick(key, md, self.deployments[key]))
        for gone in set(self._specs) - set(self.modeldeployments):
            self.controllers.pop(gone, None)
            self._due.pop(gone, None)
            self._specs.pop(gone, None)
        await asyncio.gather(*due)

    def _spec(self, key: Key, md: Mapping[str, Any]) -> Autoscaling | AutoscalingError:
        """spec.serving.autoscaling, parsed once per resourceVersion (the loop looks 4 times a second)."""
        version = str((md.get("metadata") or {}).get("resourceVersion") or "")
        cached = self._specs.get(key)
        if cached is not None and version and cached[0] == version:
            return cached[1]
        try:
            spec: Autoscaling | AutoscalingError = parse_autoscaling(md)
        except AutoscalingError as exc:
            spec = exc
        self._specs[key] = (version, spec)
        return spec

    async def _tick(self, key: Key, md: Mapping[str, Any], deployment: Mapping[str, Any]) -> None:
        ctrl = self.controllers.get(key)
        if ctrl is None:
            ctrl = AutoscalerController(
                self.kube, namespace=key[0], name=key[1], scraper=self.scraper, clock=self.clock
            )
            self.controllers[key] = ctrl
        try:
            pods = _GET if self.pods is None else list(self.pods.get(key, {}).values())
            result = await ctrl.tick(md, deployment, pods)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # configuration, API or network trouble: report, retry next period
            problem = str(exc) if isinstance(exc, AutoscalingError) else f"{type(exc).__name__}: {exc}"
            self._report(key, problem)
            return
        self._errors.pop(key, None)
        if result.decision is not None and result.scaled:
            pending = self.decisions.get(key)
            self.decisions[key] = result.decision
            # the same count already queued (its reconcile has not run, or keeps failing and backs off):
            # no second trigger, which would also cut the reconcile's back-off short every tick
            if pending is None or pending.desired != result.decision.desired:
                self.trigger(key)

    def _report(self, key: Key, message: str) -> None:
        if self._errors.get(key) != message:
            log.warning("%s/%s: autoscaling: %s", *key, message)
        self._errors[key] = message
