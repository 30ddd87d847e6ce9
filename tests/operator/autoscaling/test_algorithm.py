"""The pure autoscaling algorithm on synthetic load series with an injected clock."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from trtforge_operator.autoscaling.algorithm import (
    Autoscaler,
    AutoscalerConfig,
    Decision,
    LastKnown,
    Mode,
    Observation,
    RateTracker,
    aggregate,
)
from trtforge_operator.errors import AutoscalingError
from trtforge_runtime.errors import TrtforgeError
from trtforge_runtime.spec.model import Autoscaling

TICK = 2.0


def config(**overrides: float) -> AutoscalerConfig:
    values: dict[str, float] = {
        "min_replicas": 1,
        "max_replicas": 20,
        "target": 8.0,
        "stable_window": 60.0,
        "panic_window": 6.0,
        "scale_down_delay": 30.0,
    }
    values.update(overrides)
    return AutoscalerConfig(**values)  # type: ignore[arg-type]


def simulate(
    scaler: Autoscaler,
    load: Callable[[float], float],
    start: float,
    end: float,
    ready_lag: float = 0.0,
) -> list[Decision]:
    """Ticks from start to end; the total load is split over the ready pods, which follow the desired
    count after `ready_lag` seconds."""
    decisions: list[Decision] = []
    history: list[tuple[float, int]] = [(start - 1e9, scaler.desired)]
    t = start
    while t < end + 1e-9:
        ready = [n for at, n in history if at <= t - ready_lag][-1] if ready_lag else scaler.desired
        decision = scaler.update(t, Observation(total=load(t), ready_pods=ready))
        history.append((t, decision.desired))
        decisions.append(decision)
        t += TICK
    return decisions


def direction_changes(decisions: list[Decision]) -> list[float]:
    """Times at which the scaling direction reversed (up after down, or down after up)."""
    changes: list[float] = []
    last = 0
    for d in decisions:
        if d.direction and last and d.direction != last:
            changes.append(d.now)
        last = d.direction or last
    return changes


def test_step_up_10x_reaches_desired_at_the_first_tick_in_panic() -> None:
    scaler = Autoscaler(config(), initial_replicas=1)
    simulate(scaler, lambda t: 8.0, 0.0, 120.0)
    assert scaler.desired == 1 and not scaler.in_panic
    step_at = 121.0  # between ticks: the next tick is 1 s later
    decisions = simulate(scaler, lambda t: 80.0 if t >= step_at else 8.0, 122.0, 140.0)
    first = decisions[0]
    assert first.mode is Mode.PANIC and first.desired == 10
    assert first.reason == "AutoscalerPanicScaleUp"
    assert "replicas 1 -> 10" in first.message and "target 8" in first.message
    assert all(d.desired == 10 for d in decisions)  # no overshoot on a clean step


def test_step_up_without_panic_follows_the_stable_average_upwards() -> None:
    scaler = Autoscaler(config(), initial_replicas=5)
    simulate(scaler, lambda t: 40.0, 0.0, 120.0)
    # +60 %: below the 2x panic threshold, so the stable average carries it, step by step
    decisions = simulate(scaler, lambda t: 64.0, 122.0, 200.0)
    assert all(d.mode is Mode.STABLE for d in decisions)
    desired = [d.desired for d in decisions]
    assert desired == sorted(desired) and desired[-1] == 8
    assert desired[0] == 5  # one sample of 64 in a 40-average window is within tolerance


def test_step_down_waits_for_the_scale_down_delay() -> None:
    scaler = Autoscaler(config(), initial_replicas=10)
    simulate(scaler, lambda t: 80.0, 0.0, 200.0)
    assert scaler.desired == 10 and not scaler.in_panic
    decisions = simulate(scaler, lambda t: 8.0, 202.0, 400.0)
    first_down = next(d for d in decisions if d.direction < 0)
    # the stable average needs a while to fall below 9 replicas, then that lower count must hold 30 s
    assert first_down.now - 202.0 >= 30.0
    assert first_down.reason == "AutoscalerScaleDown"
    assert all(d.direction <= 0 for d in decisions)
    final = next(d for d in decisions if d.desired == 1)
    assert final.now <= 202.0 + 60.0 + 30.0 + TICK  # stable window + delay
    assert decisions[-1].desired == 1


def test_scale_down_delay_zero_scales_down_as_soon_as_the_average_allows() -> None:
    scaler = Autoscaler(config(scale_down_delay=0.0), initial_replicas=10)
    simulate(scaler, lambda t: 80.0, 0.0, 200.0)
    decisions = simulate(scaler, lambda t: 8.0, 202.0, 300.0)
    first_down = next(d for d in decisions if d.direction < 0)
    assert first_down.now - 202.0 < 20.0
    assert decisions[-1].desired == 1


def test_panic_blocks_scale_down_and_ends_after_a_stable_window_without_panic() -> None:
    scaler = Autoscaler(config(), initial_replicas=1)
    simulate(scaler, lambda t: 8.0, 0.0, 100.0)
    # burst at 102 s; pods become ready 10 s after being asked for; the burst ends at 120 s
    decisions = simulate(scaler, lambda t: 80.0 if t < 120.0 else 4.0, 102.0, 300.0, ready_lag=10.0)
    assert decisions[0].mode is Mode.PANIC and decisions[0].desired == 10
    # the panic condition holds while fewer than 5 of the 10 pods are ready: until 10 s after the scale-up
    last_signal = max(d.now for d in decisions if d.panic_average >= 2 * d.ready_pods * 8.0)
    assert last_signal >= 110.0
    in_panic = [d for d in decisions if d.now < last_signal + 60.0]
    assert all(d.mode is Mode.PANIC and d.desired == 10 for d in in_panic)  # load fell at 120 s: no effect
    after = [d for d in decisions if d.now >= last_signal + 60.0]
    assert after[0].mode is Mode.STABLE
    # panic recommendations still hold for the scale-down delay after panic ends
    assert all(d.desired == 10 for d in after if d.now < last_signal + 60.0 + 30.0 - TICK)
    assert decisions[-1].desired == 1


def test_panic_re_entry_extends_panic() -> None:
    scaler = Autoscaler(config(max_replicas=4), initial_replicas=1)
    # capped at 4 replicas, 80 in flight keeps the panic condition (80 >= 2 * 4 * 8) true all along
    decisions = simulate(scaler, lambda t: 80.0, 0.0, 200.0)
    assert all(d.mode is Mode.PANIC for d in decisions)
    assert {d.desired for d in decisions} == {4}


@pytest.mark.parametrize("load", [8.0, 40.0, 44.0, 52.0, 75.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noisy_steady_load_does_not_flap(load: float, seed: int) -> None:
    rng = random.Random(seed)
    scaler = Autoscaler(config(), initial_replicas=math.ceil(load / 8.0))

    def noisy(t: float) -> float:
        return load * (1.0 + rng.uniform(-0.3, 0.3))

    decisions = simulate(scaler, noisy, 0.0, 20 * 60.0)  # from the start: a fresh (restarted) autoscaler
    changes = direction_changes(decisions)
    for at in changes:  # at most one direction change in any stable window
        assert len([c for c in changes if at - 60.0 < c <= at]) <= 1, changes
    assert not any(d.mode is Mode.PANIC for d in decisions)
    spread = {d.desired for d in decisions}
    assert max(spread) - min(spread) <= 1, spread
    # and the count stays where the load needs it: within one replica of ceil(load / target)
    assert all(abs(d.desired - math.ceil(load / 8.0)) <= 1 for d in decisions)


def test_bounds_are_never_crossed() -> None:
    scaler = Autoscaler(config(min_replicas=2, max_replicas=5), initial_replicas=1)
    assert scaler.desired == 2  # the initial count is clamped too
    up = simulate(scaler, lambda t: 10_000.0, 0.0, 60.0)
    assert max(d.desired for d in up) == 5
    down = simulate(scaler, lambda t: 0.0, 62.0, 400.0)
    assert min(d.desired for d in down) == 2 and down[-1].desired == 2


def test_reconfigure_lowers_the_maximum_at_the_next_tick() -> None:
    scaler = Autoscaler(config(), initial_replicas=1)
    simulate(scaler, lambda t: 160.0, 0.0, 20.0)
    assert scaler.desired == 20
    scaler.reconfigure(config(max_replicas=6))
    decision = scaler.update(22.0, Observation(total=160.0, ready_pods=20))
    assert decision.desired == 6 and decision.direction < 0


def test_no_ready_pods_holds_the_count() -> None:
    scaler = Autoscaler(config(), initial_replicas=3)
    decision = scaler.update(0.0, Observation(total=0.0, ready_pods=0))
    assert decision.mode is Mode.HOLD and decision.desired == 3 and not decision.changed
    assert "no ready pods" in decision.message
    assert scaler.update(2.0, None).desired == 3


def test_missing_pods_count_as_at_target_never_as_zero() -> None:
    values: dict[str, float | None] = {
        "a": 0.0,
        "b": None,
        "c": math.nan,
        "d": -3.0,
        "e": math.inf,
        "f": 2.5,
    }
    obs = aggregate(values, target=8.0)
    assert obs.ready_pods == 6 and obs.unknown_pods == 4
    assert obs.total == pytest.approx(0.0 + 4 * 8.0 + 2.5)
    # a deployment whose pods all stopped answering keeps its size instead of collapsing to min
    scaler = Autoscaler(config(), initial_replicas=6)
    silent = aggregate(dict.fromkeys("abcdef"), target=8.0)
    for i in range(200):
        scaler.update(i * TICK, silent)
    assert scaler.desired == 6
    # two silent pods out of five idle ones: the scale-down stops at 2, not at 1
    scaler = Autoscaler(config(), initial_replicas=5)
    partly = aggregate({"a": 0.0, "b": 0.0, "c": 0.0, "d": None, "e": None}, target=8.0)
    for i in range(200):
        scaler.update(i * TICK, partly)
    assert scaler.desired == 2


def test_rate_tracker_computes_rates_and_survives_resets() -> None:
    tracker = RateTracker()
    assert tracker.update(0.0, {"a": 100.0, "b": 5.0}) == {"a": None, "b": None}
    assert tracker.update(2.0, {"a": 120.0, "b": 9.0}) == {"a": 10.0, "b": 2.0}
    # a restarted pod: its counter starts again from zero, the rate counts from zero
    assert tracker.update(4.0, {"a": 6.0, "b": 13.0}) == {"a": 3.0, "b": 2.0}
    # an unusable value keeps the previous sample; the next rate spans the gap
    assert tracker.update(6.0, {"a": math.nan, "b": None}) == {"a": None, "b": None}
    assert tracker.update(8.0, {"a": 26.0, "b": 21.0}) == {"a": 5.0, "b": 2.0}
    # a pod that disappears is forgotten; when it comes back it starts afresh
    assert tracker.update(10.0, {"b": 25.0}) == {"b": 2.0}
    assert tracker.update(12.0, {"a": 1000.0, "b": 29.0}) == {"a": None, "b": 2.0}
    # a clock that did not advance gives no rate instead of a division by zero
    assert tracker.update(12.0, {"a": 1001.0, "b": 29.0})["a"] is None


def test_rps_through_rates_scales_like_concurrency() -> None:
    scaler = Autoscaler(config(target=100.0), initial_replicas=1)
    tracker = RateTracker()
    counters = {"p0": 0.0}
    for i in range(60):
        now = i * TICK
        counters = {pod: value + 500.0 * TICK for pod, value in counters.items()}  # 500 rps per pod
        rates = tracker.update(now, counters)
        scaler.update(now, aggregate(rates, target=100.0))
    assert scaler.desired == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_replicas": 5, "max_replicas": 2}, "minReplicas must be <= maxReplicas"),
        ({"min_replicas": 0}, "minReplicas must be >= 1"),
        ({"target": 0.0}, "target must be a positive number"),
        ({"target": math.nan}, "target must be a positive number"),
        ({"panic_window": 90.0}, "panicWindowSeconds <= stableWindowSeconds"),
        ({"scale_down_delay": -1.0}, "scaleDownDelaySeconds must be >= 0"),
        ({"tick": 0.0}, "tick must be in"),
    ],
)
def test_bad_configuration_is_a_clear_error(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(AutoscalingError, match=message) as info:
        config(**overrides)
    assert isinstance(info.value, TrtforgeError)


def test_config_from_spec() -> None:
    spec = Autoscaling.model_validate(
        {"minReplicas": 2, "maxReplicas": 9, "target": 4, "metric": "rps", "stableWindowSeconds": 30}
    )
    cfg = AutoscalerConfig.from_spec(spec)
    assert (cfg.min_replicas, cfg.max_replicas, cfg.target, cfg.metric) == (2, 9, 4.0, "rps")
    assert (cfg.stable_window, cfg.panic_window, cfg.scale_down_delay) == (30.0, 6.0, 30.0)


def test_an_adopted_count_still_waits_for_the_scale_down_delay() -> None:
    scaler = Autoscaler(config(), initial_replicas=1)
    simulate(scaler, lambda t: 8.0, 0.0, 100.0)
    scaler.reset_replicas(3, now=100.0)  # someone scaled the Deployment to 3
    decisions = simulate(scaler, lambda t: 8.0, 102.0, 200.0)
    first_down = next(d for d in decisions if d.direction < 0)
    assert first_down.now >= 130.0 and first_down.desired == 1


def test_start_up_prior_damps_first_samples_but_not_a_real_increase() -> None:
    # a fresh autoscaler at 5 replicas sees 40 % above capacity on its first ticks: no reaction yet
    scaler = Autoscaler(config(), initial_replicas=5)
    first = simulate(scaler, lambda t: 56.0, 0.0, 10.0)
    assert {d.desired for d in first} == {5}
    # the higher load is real: it is followed within the stable window, without panic
    later = simulate(scaler, lambda t: 56.0, 12.0, 60.0)
    assert later[-1].desired == 7 and not any(d.mode is Mode.PANIC for d in later)
    # a surge trips panic at once, prior or not
    scaler = Autoscaler(config(), initial_replicas=1)
    assert scaler.update(0.0, Observation(total=80.0, ready_pods=1)).desired == 10


# the cluster box's whole-loop windows (tests/cluster_box/scenario.py AUTOSCALING)
BOX = AutoscalerConfig(
    min_replicas=1,
    max_replicas=3,
    target=2.0,
    stable_window=8.0,
    panic_window=4.0,
    scale_down_delay=4.0,
    tick=1.0,
)


def box_run(scaler: Autoscaler, lag: int, busy_scrape_fails: Callable[[float], bool]) -> list[int]:
    """Constant load of 8 in-flight requests, all on the first pod (clients keep their connections), as
    the built-in autoscaler's controller feeds it once a second: the Deployment's count as the watch
    delivered it (each decision applied and seen `lag` ticks later), then the scrape of the ready pods
    (the two new ones ready from t=20, idle)."""
    last = LastKnown()
    desired: list[int] = []
    for i in range(40):
        now = float(i)
        scaler.observe_replicas(desired[i - lag] if i >= lag else 1, now)
        scrape: dict[str, float | None] = {"p0": None if busy_scrape_fails(now) else 8.0}
        if now >= 20:
            scrape.update(p1=0.0, p2=0.0)
        obs = aggregate(last.fill(now, scrape, BOX.stable_window), BOX.target)
        desired.append(scaler.update(now, obs).desired)
    return desired


@pytest.mark.parametrize("lag", [1, 2, 3])
@pytest.mark.parametrize("fails", ["never", "mostly"])
def test_constant_load_is_not_scaled_down_while_the_new_pods_start(lag: int, fails: str) -> None:
    """The whole-loop run that went 3 -> 2 -> 1 within seconds under a constant 8 clients, before the new
    pods were ready: the one busy pod's scrape timed out while they started (CPU), and the Deployment in
    the watch cache lagged behind the decisions (the reconcile applying them was slow). Neither the
    stale count nor the missed scrapes may lower the count."""
    scaler = Autoscaler(BOX, initial_replicas=1)
    if fails == "never":
        desired = box_run(scaler, lag, lambda t: False)
    else:  # the busy pod answers only every 5th scrape from t=2
        desired = box_run(scaler, lag, lambda t: t >= 2 and t % 5 != 0)
    assert desired == [3] * 40


def test_a_count_behind_the_own_decision_is_not_adopted_but_an_outside_change_is() -> None:
    scaler = Autoscaler(BOX, initial_replicas=1)
    scaler.update(0.0, Observation(total=8.0, ready_pods=1))  # panic: 3
    assert scaler.desired == 3
    assert not scaler.observe_replicas(1, 1.0)  # the decision is not applied yet: nothing changed outside
    assert scaler.desired == 3
    assert not scaler.observe_replicas(3, 2.0)  # applied
    assert scaler.observe_replicas(2, 3.0)  # someone scaled it to 2: adopted
    assert scaler.desired == 2
    assert not scaler.observe_replicas(2, 4.0)
    # decided 3, then 1 before the 3 was seen: the 3 arriving late is this autoscaler's own, not adopted
    scaler.update(5.0, Observation(total=8.0, ready_pods=1))
    assert scaler.desired == 3
    scaler.reset_replicas(1, 6.0)  # (a decision of 1, as if the load had gone)
    assert not scaler.observe_replicas(3, 7.0) and scaler.desired == 1


def test_a_failed_scrape_counts_as_the_pods_last_value_within_the_horizon() -> None:
    last = LastKnown()
    assert last.fill(0.0, {"a": 8.0, "b": None}, 8.0) == {"a": 8.0, "b": None}
    assert last.fill(4.0, {"a": None, "b": math.nan}, 8.0) == {"a": 8.0, "b": None}
    assert last.fill(8.0, {"a": -1.0, "b": 2.0}, 8.0) == {"a": 8.0, "b": 2.0}
    assert last.fill(8.5, {"a": None, "b": None}, 8.0) == {"a": None, "b": 2.0}  # a's is too old
    assert last.fill(9.0, {"b": None}, 8.0) == {"b": 2.0}
    assert last.fill(10.0, {"a": None, "b": None}, 8.0) == {"a": None, "b": 2.0}  # a was forgotten
