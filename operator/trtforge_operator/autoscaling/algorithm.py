"""The built-in autoscaler's decision core: pure, clock-injected, no I/O.

It follows Knative's KPA. Every tick the caller hands in the aggregated load of the ready pods (total
in-flight requests, or total requests per second) and the current time; the autoscaler keeps the samples
of the stable window (default 60 s) and of the panic window (default 6 s) and recommends

    desired = ceil(window average / per-replica target)

- Panic: when the panic-window average reaches `panic_threshold` (2x) times the current capacity
  (ready pods x target), the autoscaler panics: it scales up at once to what the panic window, or the
  newest sample if higher, asks for, and never scales down while in panic. It leaves panic after a whole
  stable window without panic conditions.
- Outside panic it follows the stable-window average. A recommendation within `tolerance` (10 %, as the
  HPA) of the current capacity keeps the current count, which gives a hysteresis band between the
  thresholds for n and n+1 replicas so that noisy steady load does not flap.
- Scale-down delay: the result is the highest recommendation of the last `scale_down_delay` seconds,
  so a lower count is applied only once it has been recommended for that long.
- Bounds: never below `min_replicas`, never above `max_replicas` (and never zero: min is at least 1).
- Start-up: until a stable window of samples exists, the missing ones count as load at the initial
  capacity (initial replicas x target), so a restarted operator does not react to its first noisy
  samples; a real surge still trips panic, which has no such prior.

Observations come from `aggregate`: a ready pod without a usable value (it did not answer, or its metric
was missing, malformed, NaN or negative) counts as its last usable value of the last stable window
(`LastKnown`: an overloaded pod whose scrape times out is as busy as it was; counting it any lower reads
as a load drop and scales down under constant load), and a pod with none counts as exactly at target, so
a silent pod neither scales the deployment to zero nor triggers panic.

The Deployment's count is reported every tick (`observe_replicas`): only a change made from outside is
adopted. A count that merely lags behind this autoscaler's own decision (not applied or not seen yet)
changes nothing; adopting it would drop the recommendations the scale-down delay holds and, in panic,
the floor that keeps panic from scaling down. For the rps metric, `RateTracker` turns per-pod request counters
into rates, treating a counter that went down as a restarted process that counted from zero.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from trtforge_operator.errors import AutoscalingError

if TYPE_CHECKING:
    from trtforge_runtime.spec.model import Autoscaling

# ceil() of a float that is an integer up to rounding (80.00000000001 / 8) must not add a replica.
_EPSILON = 1e-9


@dataclass(frozen=True)
class AutoscalerConfig:
    """The parameters of one autoscaler, in seconds and replicas."""

    min_replicas: int
    max_replicas: int
    target: float
    stable_window: float
    panic_window: float
    scale_down_delay: float
    metric: str = "concurrency"
    tick: float = 2.0  # the expected time between updates (sizes the start-up prior)
    panic_threshold: float = 2.0
    tolerance: float = 0.1

    def __post_init__(self) -> None:
        if self.min_replicas < 1:
            raise AutoscalingError(f"minReplicas must be >= 1, got {self.min_replicas}")
        if self.min_replicas > self.max_replicas:
            raise AutoscalingError(
                f"minReplicas must be <= maxReplicas, got {self.min_replicas} > {self.max_replicas}"
            )
        if not (self.target > 0 and math.isfinite(self.target)):
            raise AutoscalingError(f"target must be a positive number, got {self.target}")
        if not 0 < self.panic_window <= self.stable_window:
            raise AutoscalingError(
                f"need 0 < panicWindowSeconds <= stableWindowSeconds, got {self.panic_window} and "
                f"{self.stable_window}"
            )
        if not 0 < self.tick <= self.stable_window:
            raise AutoscalingError(f"tick must be in (0, stableWindowSeconds], got {self.tick}")
        if self.scale_down_delay < 0:
            raise AutoscalingError(f"scaleDownDelaySeconds must be >= 0, got {self.scale_down_delay}")
        if self.panic_threshold <= 1:
            raise AutoscalingError(f"panic threshold must be > 1, got {self.panic_threshold}")
        if not 0 <= self.tolerance < 1:
            raise AutoscalingError(f"tolerance must be in [0, 1), got {self.tolerance}")

    @classmethod
    def from_spec(cls, spec: Autoscaling) -> AutoscalerConfig:
        return cls(
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            target=spec.target,
            stable_window=float(spec.stable_window_seconds),
            panic_window=float(spec.panic_window_seconds),
            scale_down_delay=float(spec.scale_down_delay_seconds),
            metric=str(spec.metric),
            tick=min(float(spec.tick_seconds), float(spec.stable_window_seconds)),
        )

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


@dataclass(frozen=True)
class Observation:
    """The load of the ready pods at one tick."""

    total: float  # sum over ready pods; a pod without a usable value counts as `target`
    ready_pods: int
    unknown_pods: int = 0  # ready pods that contributed `target` because their value was unusable


def usable(value: float | None) -> bool:
    """A metric value the autoscaler may use: present, finite and not negative."""
    return value is not None and math.isfinite(value) and value >= 0


def aggregate(values: Mapping[str, float | None], target: float) -> Observation:
    """Sums per-pod values of the ready pods; a pod without a usable value counts as at target."""
    total = 0.0
    unknown = 0
    for value in values.values():
        if value is not None and usable(value):
            total += value
        else:
            total += target
            unknown += 1
    return Observation(total=total, ready_pods=len(values), unknown_pods=unknown)


class RateTracker:
    """Per-pod rates from monotonically increasing counters (requests_total), tolerant of resets."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def update(self, now: float, counters: Mapping[str, float | None]) -> dict[str, float | None]:
        """Rates per pod since its previous usable counter value; None where no rate is known yet.

        A pod whose counter is unusable this tick keeps its previous sample, so that its next rate spans
        the gap. Pods no longer listed are forgotten.
        """
        rates: dict[str, float | None] = {}
        for pod, value in counters.items():
            if value is None or not usable(value):
                rates[pod] = None
                continue
            previous = self._last.get(pod)
            self._last[pod] = (now, value)
            if previous is None or now <= previous[0]:
                rates[pod] = None
                continue
            delta = value - previous[1]
            if delta < 0:  # counter reset: the process restarted and counted from zero since
                delta = value
            rates[pod] = delta / (now - previous[0])
        for pod in set(self._last) - set(counters):
            del self._last[pod]
        return rates


class LastKnown:
    """Per-pod last usable values, so that a pod's unusable value counts as its last usable one."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def fill(self, now: float, values: Mapping[str, float | None], horizon: float) -> dict[str, float | None]:
        """`values` with each unusable one replaced by the pod's last usable value of the last `horizon`
        seconds (None when it has none). Pods no longer listed are forgotten."""
        out: dict[str, float | None] = {}
        for pod, value in values.items():
            if value is not None and usable(value):
                self._last[pod] = (now, value)
                out[pod] = value
                continue
            last = self._last.get(pod)
            out[pod] = last[1] if last is not None and now - last[0] <= horizon else None
        for pod in set(self._last) - set(values):
            del self._last[pod]
        return out


class Mode(StrEnum):
    STABLE = "stable"
    PANIC = "panic"
    HOLD = "hold"  # no observation (no ready pods): keep the current count


@dataclass(frozen=True)
class Decision:
    """What one tick decided and why (for the Event and the log)."""

    now: float
    previous: int
    desired: int
    mode: Mode
    observed: float  # the load the recommendation was computed from
    window: float  # the window that load was averaged over, in seconds
    stable_average: float
    panic_average: float
    ready_pods: int
    target: float
    metric: str

    @property
    def changed(self) -> bool:
        return self.desired != self.previous

    @property
    def direction(self) -> int:
        return (self.desired > self.previous) - (self.desired < self.previous)

    @property
    def reason(self) -> str:
        """The Kubernetes Event reason."""
        if self.direction > 0:
            return "AutoscalerPanicScaleUp" if self.mode is Mode.PANIC else "AutoscalerScaleUp"
        if self.direction < 0:
            return "AutoscalerScaleDown"
        return "AutoscalerSteady"

    @property
    def message(self) -> str:
        unit = "in-flight requests" if self.metric == "concurrency" else "requests/s"
        if self.mode is Mode.HOLD:
            return f"no ready pods to observe: replicas kept at {self.desired}"
        return (
            f"replicas {self.previous} -> {self.desired}: observed {self.observed:.2f} {unit} "
            f"({self.mode} window {self.window:g}s average) over {self.ready_pods} ready pods, "
            f"target {self.target:g} per replica"
        )


class Autoscaler:
    """The stateful decision core; feed it one observation per tick with the current time."""

    def __init__(self, config: AutoscalerConfig, *, initial_replicas: int) -> None:
        self._config = config
        self._desired = config.clamp(initial_replicas)
        self._samples: deque[tuple[float, float]] = deque()
        self._recommendations: deque[tuple[float, int]] = deque()
        self._panic_signal_at: float | None = None  # last time the panic condition held, while in panic
        # Until the stable window has filled, its missing samples count as load at the initial capacity:
        # a restarted operator neither scales on its first noisy sample nor forgets the current size.
        self._prior = self._desired * config.target
        self._updates = 0
        self._seen = initial_replicas  # the Deployment's count at the previous look
        self._decided: set[int] = set()  # counts decided here since that count last changed

    @property
    def config(self) -> AutoscalerConfig:
        return self._config

    @property
    def desired(self) -> int:
        return self._desired

    @property
    def in_panic(self) -> bool:
        return self._panic_signal_at is not None

    def reconfigure(self, config: AutoscalerConfig) -> None:
        """Applies a changed spec, keeping the history; the count is re-clamped at the next update."""
        self._config = config

    def reset_replicas(self, replicas: int, now: float) -> None:
        """Adopts a replica count set from outside (someone scaled the Deployment): it counts as a
        recommendation made now, so going below it still waits for the scale-down delay."""
        self._desired = self._config.clamp(replicas)
        self._recommendations = deque([(now, self._desired)])

    def observe_replicas(self, replicas: int, now: float) -> bool:
        """The Deployment's count as seen this tick; True when it was set from outside and adopted.

        A count that changed since the previous look to something this autoscaler did not decide (the
        operator creating the Deployment, a rollback, someone scaling it) is adopted. One that is only
        behind this autoscaler's own decision (the reconcile has not applied it, or the watch has not
        delivered it yet) is not: adopting it would forget the recommendations the scale-down delay
        holds and lower the floor that keeps panic from scaling down."""
        seen, self._seen = self._seen, replicas
        if replicas == seen:
            return False
        own = replicas == self._desired or replicas in self._decided
        self._decided.clear()
        if own:  # one of this autoscaler's decisions arrived (perhaps overtaken by a later one)
            return False
        self.reset_replicas(replicas, now)
        return True

    def update(self, now: float, observation: Observation | None) -> Decision:
        cfg = self._config
        previous = self._desired
        if observation is None or observation.ready_pods == 0:
            self._desired = cfg.clamp(previous)
            return self._decision(now, previous, Mode.HOLD, 0.0, 0.0, 0.0, 0.0, 0)

        self._samples.append((now, observation.total))
        self._updates += 1
        while self._samples and self._samples[0][0] <= now - cfg.stable_window:
            self._samples.popleft()
        missing = max(0, round(cfg.stable_window / cfg.tick) - self._updates)
        stable_average = (sum(v for _, v in self._samples) + missing * self._prior) / (
            len(self._samples) + missing
        )
        panic_values = [v for t, v in self._samples if t > now - cfg.panic_window]
        panic_average = sum(panic_values) / len(panic_values)

        capacity = max(1, observation.ready_pods) * cfg.target
        if panic_average >= cfg.panic_threshold * capacity:
            self._panic_signal_at = now
        elif self._panic_signal_at is not None and now - self._panic_signal_at >= cfg.stable_window:
            self._panic_signal_at = None

        if self._panic_signal_at is not None:
            mode = Mode.PANIC
            observed = max(panic_average, observation.total)
            window = cfg.panic_window
            recommendation = max(self._ceil(observed / cfg.target), previous)
        else:
            mode = Mode.STABLE
            observed = stable_average
            window = cfg.stable_window
            recommendation = self._ceil(observed / cfg.target)
            if abs(observed / (previous * cfg.target) - 1.0) <= cfg.tolerance:
                recommendation = previous
        recommendation = cfg.clamp(recommendation)

        self._recommendations.append((now, recommendation))
        while self._recommendations and self._recommendations[0][0] <= now - cfg.scale_down_delay:
            self._recommendations.popleft()
        if not self._recommendations:  # scale_down_delay == 0 drops even the newest one
            self._recommendations.append((now, recommendation))
        self._desired = cfg.clamp(max(r for _, r in self._recommendations))
        self._decided.add(self._desired)
        return self._decision(
            now, previous, mode, observed, window, stable_average, panic_average, observation.ready_pods
        )

    @staticmethod
    def _ceil(value: float) -> int:
        # max(1, ...) would be an equivalent mutant: every result is clamped to >= 1 afterwards
        return max(0, math.ceil(value - _EPSILON))  # pragma: no mutate

    def _decision(
        self,
        now: float,
        previous: int,
        mode: Mode,
        observed: float,
        window: float,
        stable_average: float,
        panic_average: float,
        ready_pods: int,
    ) -> Decision:
        return Decision(
            now=now,
            previous=previous,
            desired=self._desired,
            mode=mode,
            observed=observed,
            window=window,
            stable_average=stable_average,
            panic_average=panic_average,
            ready_pods=ready_pods,
            target=self._config.target,
            metric=self._config.metric,
        )
