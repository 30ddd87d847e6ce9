"""The autoscaler's decisions exactly at each boundary, on both sides of it.

Each test sits on an edge the algorithm documents (autoscaling/algorithm.py, docs/autoscaling.md): the
panic threshold is *reached* (>=), a sample exactly one window old has left the window, a recommendation
exactly `scale_down_delay` old no longer holds the count up, panic ends exactly one stable window after
its last signal, the tolerance band includes its edge, the bounds clamp at their value, and a metric of
exactly 0 is a usable value. Loads are chosen to be exact in binary floating point.
"""

from __future__ import annotations

import pytest
from trtforge_operator.autoscaling.algorithm import (
    Autoscaler,
    AutoscalerConfig,
    Decision,
    Mode,
    Observation,
    RateTracker,
    aggregate,
    usable,
)
from trtforge_operator.errors import AutoscalingError
from trtforge_runtime.spec.model import Autoscaling

TARGET = 8.0


def config(**overrides: float) -> AutoscalerConfig:
    values: dict[str, float] = {
        "min_replicas": 1,
        "max_replicas": 50,
        "target": TARGET,
        "stable_window": 60.0,
        "panic_window": 6.0,
        "scale_down_delay": 30.0,
    }
    values.update(overrides)
    return AutoscalerConfig(**values)  # type: ignore[arg-type]


def one_window(**overrides: float) -> AutoscalerConfig:
    """A stable window of a single tick: the first sample is the whole window (no start-up prior)."""
    base: dict[str, float] = {
        "stable_window": 10.0,
        "panic_window": 10.0,
        "tick": 10.0,
        "scale_down_delay": 0.0,
    }
    base.update(overrides)
    return config(**base)


# ------------------------------------------------------------------------------------------ panic threshold
@pytest.mark.parametrize("ready", [1, 2, 5])
def test_panic_starts_when_the_load_reaches_twice_the_capacity(ready: int) -> None:
    capacity = ready * TARGET
    scaler = Autoscaler(config(), initial_replicas=ready)
    at = scaler.update(0.0, Observation(total=2 * capacity, ready_pods=ready))
    assert at.mode is Mode.PANIC and scaler.in_panic
    assert at.desired == 2 * ready and at.reason == "AutoscalerPanicScaleUp"


@pytest.mark.parametrize("ready", [1, 2, 5])
def test_just_below_twice_the_capacity_is_no_panic(ready: int) -> None:
    capacity = ready * TARGET
    scaler = Autoscaler(config(), initial_replicas=ready)
    below = scaler.update(0.0, Observation(total=2 * capacity - 0.25, ready_pods=ready))
    assert below.mode is Mode.STABLE and not scaler.in_panic
    assert below.desired == ready  # one sample against a window of prior at capacity: no change yet


def test_the_threshold_is_a_setting() -> None:
    below = Autoscaler(config(panic_threshold=3.0), initial_replicas=1)
    assert below.update(0.0, Observation(total=23.75, ready_pods=1)).mode is Mode.STABLE
    at = Autoscaler(config(panic_threshold=3.0), initial_replicas=1)
    assert at.update(0.0, Observation(total=24.0, ready_pods=1)).mode is Mode.PANIC


def test_capacity_counts_ready_pods_not_the_desired_count() -> None:
    # desired 4 but only 1 pod ready: 16 in flight is twice what the ready pod can take
    scaler = Autoscaler(config(), initial_replicas=4)
    decision = scaler.update(0.0, Observation(total=16.0, ready_pods=1))
    assert decision.mode is Mode.PANIC and decision.desired == 4  # panic never scales down


# ---------------------------------------------------------------------------------------------- panic window
def test_a_sample_exactly_one_panic_window_old_has_left_it() -> None:
    # 20 over 2 pods (threshold 32: calm), then 12 over 1 pod (threshold 16: calm on its own).
    # Averaged together they would be 16 = the threshold for 1 pod.
    inside = Autoscaler(config(), initial_replicas=2)
    inside.update(0.0, Observation(total=20.0, ready_pods=2))
    within = inside.update(5.75, Observation(total=12.0, ready_pods=1))
    assert within.panic_average == 16.0 and within.mode is Mode.PANIC

    edge = Autoscaler(config(), initial_replicas=2)
    edge.update(0.0, Observation(total=20.0, ready_pods=2))
    at = edge.update(6.0, Observation(total=12.0, ready_pods=1))
    assert at.panic_average == 12.0 and at.mode is Mode.STABLE


def test_in_panic_the_newest_sample_counts_when_it_is_above_the_panic_average() -> None:
    scaler = Autoscaler(config(), initial_replicas=1)
    scaler.update(0.0, Observation(total=20.0, ready_pods=1))  # panic: 3 replicas
    decision = scaler.update(2.0, Observation(total=40.0, ready_pods=1))
    assert decision.panic_average == 30.0 and decision.observed == 40.0
    assert decision.desired == 5 and decision.window == 6.0


def test_in_panic_a_lower_sample_does_not_lower_the_panic_recommendation() -> None:
    scaler = Autoscaler(config(), initial_replicas=1)
    scaler.update(0.0, Observation(total=40.0, ready_pods=1))  # panic: 5 replicas
    decision = scaler.update(2.0, Observation(total=24.0, ready_pods=1))  # average 32: 4 replicas
    assert decision.mode is Mode.PANIC and decision.observed == 32.0 and decision.desired == 5


# ---------------------------------------------------------------------------------------------- panic exit
def test_panic_ends_exactly_one_stable_window_after_its_last_signal() -> None:
    scaler = Autoscaler(config(scale_down_delay=0.0), initial_replicas=1)
    assert scaler.update(0.0, Observation(total=80.0, ready_pods=1)).mode is Mode.PANIC
    calm = Observation(total=8.0, ready_pods=10)
    for now in range(2, 60, 2):
        assert scaler.update(float(now), calm).mode is Mode.PANIC, now
    assert scaler.update(59.75, calm).mode is Mode.PANIC
    end = scaler.update(60.0, calm)
    assert end.mode is Mode.STABLE and not scaler.in_panic


def test_a_new_signal_restarts_the_panic_window() -> None:
    scaler = Autoscaler(config(), initial_replicas=1)
    scaler.update(0.0, Observation(total=80.0, ready_pods=1))
    scaler.update(30.0, Observation(total=80.0, ready_pods=1))  # still at twice one pod's capacity
    assert scaler.update(60.0, Observation(total=8.0, ready_pods=10)).mode is Mode.PANIC
    assert scaler.update(90.0, Observation(total=8.0, ready_pods=10)).mode is Mode.STABLE


# --------------------------------------------------------------------------------------------- stable window
def test_a_sample_exactly_one_stable_window_old_has_left_it() -> None:
    cfg = config(stable_window=10.0, panic_window=2.0, tick=2.0, scale_down_delay=0.0, tolerance=0.0)
    scaler = Autoscaler(cfg, initial_replicas=10)
    scaler.update(0.0, Observation(total=150.0, ready_pods=10))
    for now in (2.0, 4.0, 6.0, 8.0):
        scaler.update(now, Observation(total=80.0, ready_pods=10))
    before = scaler.update(9.75, Observation(total=80.0, ready_pods=10))
    assert before.stable_average == pytest.approx((150.0 + 5 * 80.0) / 6)
    at = scaler.update(10.0, Observation(total=80.0, ready_pods=10))
    assert at.stable_average == 80.0 and at.mode is Mode.STABLE
    assert at.desired == 10 and at.window == 10.0


def test_the_start_up_prior_fills_exactly_the_samples_a_window_lacks() -> None:
    # 30 ticks per stable window: after one sample of 0, the average is 29 samples of prior out of 30
    scaler = Autoscaler(config(), initial_replicas=3)
    first = scaler.update(0.0, Observation(total=0.0, ready_pods=3))
    assert first.stable_average == pytest.approx(29 * 24.0 / 30)
    for i in range(1, 29):
        scaler.update(2.0 * i, Observation(total=0.0, ready_pods=3))
    last_prior = scaler.update(58.0, Observation(total=0.0, ready_pods=3))
    assert last_prior.stable_average == 0.0  # the 30th sample: no prior left
    assert scaler.update(60.0, Observation(total=0.0, ready_pods=3)).stable_average == 0.0


# ------------------------------------------------------------------------------------------ scale-down delay
def test_a_recommendation_exactly_scale_down_delay_old_no_longer_holds_the_count() -> None:
    scaler = Autoscaler(config(scale_down_delay=10.0), initial_replicas=1)
    scaler.reset_replicas(5, now=0.0)  # counts as a recommendation of 5 made at t=0
    for now in (2.0, 4.0, 6.0, 8.0, 9.75):
        assert scaler.update(now, Observation(total=8.0, ready_pods=5)).desired == 5, now
    down = scaler.update(10.0, Observation(total=8.0, ready_pods=5))
    assert down.desired == 1 and down.reason == "AutoscalerScaleDown"


def test_the_highest_recommendation_of_the_delay_wins() -> None:
    scaler = Autoscaler(one_window(scale_down_delay=20.0), initial_replicas=4)
    scaler.update(0.0, Observation(total=32.0, ready_pods=4))  # 4
    scaler.update(10.0, Observation(total=16.0, ready_pods=4))  # recommends 2, 4 still holds
    assert scaler.desired == 4
    assert scaler.update(20.0, Observation(total=24.0, ready_pods=4)).desired == 3  # 4 is 20 s old: gone


def test_scale_up_is_never_delayed() -> None:
    scaler = Autoscaler(one_window(scale_down_delay=600.0), initial_replicas=2)
    assert scaler.update(0.0, Observation(total=24.0, ready_pods=2)).desired == 3


# ------------------------------------------------------------------------------------------- tolerance band
@pytest.mark.parametrize(
    ("total", "desired"),
    [(40.0, 4), (24.0, 4), (40.25, 6), (23.75, 3)],
)
def test_a_load_within_the_tolerance_band_keeps_the_count_including_its_edge(
    total: float, desired: int
) -> None:
    # 4 replicas x 8 = 32; tolerance 25 %: 24 and 40 are the edges, kept; beyond them the count moves
    scaler = Autoscaler(one_window(tolerance=0.25), initial_replicas=4)
    assert scaler.update(0.0, Observation(total=total, ready_pods=4)).desired == desired


def test_zero_tolerance_follows_every_change() -> None:
    scaler = Autoscaler(one_window(tolerance=0.0), initial_replicas=4)
    assert scaler.update(0.0, Observation(total=32.25, ready_pods=4)).desired == 5


# ------------------------------------------------------------------------------------------------ rounding
@pytest.mark.parametrize(("total", "desired"), [(80.0, 10), (80.0 + 1e-10, 10), (80.25, 11), (79.75, 10)])
def test_desired_is_the_ceiling_of_load_over_target(total: float, desired: int) -> None:
    scaler = Autoscaler(one_window(tolerance=0.0), initial_replicas=10)
    assert scaler.update(0.0, Observation(total=total, ready_pods=10)).desired == desired


def test_no_load_scales_to_the_minimum_not_below() -> None:
    scaler = Autoscaler(one_window(min_replicas=1), initial_replicas=3)
    assert scaler.update(0.0, Observation(total=0.0, ready_pods=3)).desired == 1


# ---------------------------------------------------------------------------------------------- bounds
@pytest.mark.parametrize(("total", "desired"), [(40.0, 5), (48.0, 5), (8.0, 2), (16.0, 2), (24.0, 3)])
def test_the_bounds_clamp_at_their_value(total: float, desired: int) -> None:
    scaler = Autoscaler(one_window(min_replicas=2, max_replicas=5, tolerance=0.0), initial_replicas=3)
    assert scaler.update(0.0, Observation(total=total, ready_pods=3)).desired == desired


def test_panic_is_clamped_to_the_maximum_too() -> None:
    scaler = Autoscaler(config(max_replicas=3), initial_replicas=1)
    assert scaler.update(0.0, Observation(total=800.0, ready_pods=1)).desired == 3


@pytest.mark.parametrize(("initial", "expected"), [(0, 2), (2, 2), (5, 5), (6, 5)])
def test_the_initial_and_adopted_counts_are_clamped(initial: int, expected: int) -> None:
    assert Autoscaler(config(min_replicas=2, max_replicas=5), initial_replicas=initial).desired == expected
    scaler = Autoscaler(config(min_replicas=2, max_replicas=5), initial_replicas=3)
    scaler.reset_replicas(initial, now=0.0)
    assert scaler.desired == expected


def test_a_hold_re_clamps_to_a_reconfigured_range() -> None:
    scaler = Autoscaler(config(), initial_replicas=8)
    scaler.reconfigure(config(max_replicas=6))
    decision = scaler.update(0.0, None)
    assert decision.mode is Mode.HOLD and decision.desired == 6 and decision.previous == 8


# ------------------------------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    "overrides",
    [
        {"min_replicas": 1, "max_replicas": 1},
        {"min_replicas": 3, "max_replicas": 3},
        {"panic_window": 60.0},  # equal to the stable window
        {"tick": 60.0},
        {"scale_down_delay": 0.0},
        {"panic_threshold": 1.01},
        {"tolerance": 0.0},
        {"tolerance": 0.99},
        {"target": 1e-6},
    ],
)
def test_configurations_on_the_edge_of_the_valid_range_are_accepted(overrides: dict[str, float]) -> None:
    cfg = config(**overrides)
    for key, value in overrides.items():
        assert getattr(cfg, key) == value


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "minReplicas must be <= maxReplicas, got 3 > 2"),
        ({"panic_window": 0.0}, "need 0 < panicWindowSeconds <= stableWindowSeconds, got 0.0 and 60.0"),
        ({"panic_window": 60.25}, "panicWindowSeconds <= stableWindowSeconds"),
        ({"tick": 60.25}, r"tick must be in \(0, stableWindowSeconds\], got 60.25"),
        ({"panic_threshold": 1.0}, "panic threshold must be > 1, got 1.0"),
        ({"tolerance": 1.0}, r"tolerance must be in \[0, 1\), got 1.0"),
        ({"tolerance": -0.01}, "tolerance must be in"),
        ({"target": -8.0}, "target must be a positive number, got -8.0"),
        ({"target": float("inf")}, "target must be a positive number"),
        ({"scale_down_delay": -0.01}, "scaleDownDelaySeconds must be >= 0, got -0.01"),
        ({"min_replicas": 0, "max_replicas": 0}, "minReplicas must be >= 1, got 0"),
    ],
)
def test_configurations_just_outside_the_valid_range_are_refused(
    overrides: dict[str, float], message: str
) -> None:
    with pytest.raises(AutoscalingError, match=message):
        config(**overrides)


# ------------------------------------------------------------------------------------------- observations
def test_zero_is_a_usable_value_and_negative_is_not() -> None:
    assert usable(0.0) and not usable(-0.01) and not usable(None)
    obs = aggregate({"a": 0.0, "b": -0.01}, target=TARGET)
    assert (obs.total, obs.ready_pods, obs.unknown_pods) == (TARGET, 2, 1)
    assert aggregate({}, target=TARGET) == Observation(total=0.0, ready_pods=0, unknown_pods=0)


def test_the_decision_message_names_window_load_pods_and_target() -> None:
    scaler = Autoscaler(config(metric="rps"), initial_replicas=2)
    scaler.reset_replicas(4, now=0.0)
    # stable average: the sample 12.5 and 29 samples of start-up prior at 2 x 8 -> 476.5 / 30 = 15.883
    decision = scaler.update(2.0, Observation(total=12.5, ready_pods=3))
    assert decision.message == (
        "replicas 4 -> 4: observed 15.88 requests/s (stable window 60s average) over 3 ready pods, "
        "target 8 per replica"
    )
    assert decision.reason == "AutoscalerSteady" and decision.direction == 0 and not decision.changed


@pytest.mark.parametrize("seconds", [0.5, 0.1])
def test_sub_second_windows_and_ticks_are_valid(seconds: float) -> None:
    cfg = config(panic_window=seconds, tick=seconds)
    assert (cfg.panic_window, cfg.tick) == (seconds, seconds)


@pytest.mark.parametrize(("tick", "stable", "expected"), [(5.0, 60, 5.0), (0.5, 60, 0.5), (45.0, 30, 30.0)])
def test_config_from_spec_takes_the_tick_capped_at_the_stable_window(
    tick: float, stable: int, expected: float
) -> None:
    spec = Autoscaling.model_validate(
        {"target": 8, "tickSeconds": tick, "stableWindowSeconds": stable, "panicWindowSeconds": 6}
    )
    assert AutoscalerConfig.from_spec(spec).tick == expected


def test_an_unchanged_counter_is_a_rate_of_zero_not_a_restart() -> None:
    tracker = RateTracker()
    tracker.update(0.0, {"a": 500.0, "b": 10.0})
    assert tracker.update(2.0, {"a": 500.0, "b": 10.5}) == {"a": 0.0, "b": 0.25}


def test_a_hold_reports_no_observation() -> None:
    scaler = Autoscaler(config(), initial_replicas=3)
    decision = scaler.update(42.0, Observation(total=5.0, ready_pods=0))
    assert decision == Decision(
        now=42.0,
        previous=3,
        desired=3,
        mode=Mode.HOLD,
        observed=0.0,
        window=0.0,
        stable_average=0.0,
        panic_average=0.0,
        ready_pods=0,
        target=TARGET,
        metric="concurrency",
    )


def test_concurrency_decisions_speak_of_in_flight_requests() -> None:
    scaler = Autoscaler(config(), initial_replicas=1)
    decision = scaler.update(0.0, Observation(total=16.0, ready_pods=1))
    assert decision.metric == "concurrency"
    assert decision.message == (
        "replicas 1 -> 2: observed 16.00 in-flight requests (panic window 6s average) over 1 ready pods, "
        "target 8 per replica"
    )
