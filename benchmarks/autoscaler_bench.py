"""Benchmark of the built-in autoscaler: simulated clock, real HTTP scraping of fake runtime pods.

    python benchmarks/autoscaler_bench.py [--repeat 3] [--json FILE]

Writes benchmarks/results/autoscaler.json (benchmarks/results.py); docs/autoscaling.md renders it
(`python scripts/render_results.py`). --repeat runs the whole suite that many times: figures are medians
with their spread over the repeats (the step figure over every step of every repeat).

1. step: the load jumps 10x (8 -> 80 in-flight, target 8 per replica) at a random moment between two
   ticks; measured: time from the step until the desired count (10) is decided, including the real
   scrape of that tick. Target <= 4 s (Knative KPA: 2 s tick, 6 s panic window).
2. noise: steady load with +-30 % uniform noise per pod and tick, 30 simulated minutes per load level;
   measured: direction changes (up after down or down after up) within any stable window. Target <= 1.
3. scrape: wall and CPU time of one tick's concurrent scrape of 50 pods, and of a whole controller tick
   (read the Deployment, list its 50 pods, scrape, decide) against the Kubernetes emulator.

Each fake pod is a real aiohttp endpoint on 127.0.0.1 serving Prometheus text; the autoscaler's pods
follow its decision at once (instant readiness), which isolates the autoscaler's own reaction time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "operator" / "autoscaling"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from autoscaling_metrics_pods import MetricsPods  # noqa: E402
from trtforge_operator.autoscaling.algorithm import Autoscaler, AutoscalerConfig, aggregate  # noqa: E402
from trtforge_operator.autoscaling.scrape import INFLIGHT_METRIC, MetricsScraper, ScrapeTarget  # noqa: E402

from benchmarks.results import fmt, write  # noqa: E402

TICK = 2.0
TARGET = 8.0


def config(max_replicas: int = 50) -> AutoscalerConfig:
    return AutoscalerConfig(
        min_replicas=1,
        max_replicas=max_replicas,
        target=TARGET,
        stable_window=60.0,
        panic_window=6.0,
        scale_down_delay=30.0,
    )


class Fleet:
    """Fake pods that follow the autoscaler's count, sharing a total load (with optional noise)."""

    def __init__(self, servers: MetricsPods, rng: random.Random, noise: float = 0.0) -> None:
        self.servers = servers
        self.rng = rng
        self.noise = noise
        self.names: list[str] = []
        self.spare: list[str] = []

    def resize(self, n: int) -> None:
        while len(self.names) < n:
            name = self.spare.pop() if self.spare else f"pod-{len(self.servers.pods)}"
            if name not in self.servers.pods:
                self.servers.add(name)
            self.names.append(name)
        while len(self.names) > n:
            self.spare.append(self.names.pop())

    def set_load(self, total: float) -> None:
        share = total / len(self.names)
        for name in self.names:
            self.servers.pods[name].inflight = share * (1.0 + self.rng.uniform(-self.noise, self.noise))

    def targets(self) -> list[ScrapeTarget]:
        return [ScrapeTarget(n, self.servers.pods[n].url) for n in self.names]


async def tick(scaler: Autoscaler, scraper: MetricsScraper, fleet: Fleet, now: float) -> tuple[int, float]:
    started = time.perf_counter()
    scrapes = await scraper.scrape(fleet.targets(), INFLIGHT_METRIC)
    observation = aggregate({s.pod: s.value for s in scrapes}, TARGET)
    decision = scaler.update(now, observation)
    return decision.desired, time.perf_counter() - started


async def bench_step(servers: MetricsPods, runs: int) -> dict[str, Any]:
    rng = random.Random(7)
    times: list[float] = []
    async with MetricsScraper(timeout=1.0) as scraper:
        for _ in range(runs):
            fleet = Fleet(servers, rng)
            fleet.resize(1)
            scaler = Autoscaler(config(), initial_replicas=1)
            now = 0.0
            while now < 60.0:  # a minute of steady 1x load fills the windows
                fleet.set_load(8.0)
                await tick(scaler, scraper, fleet, now)
                now += TICK
            step_at = now - TICK + rng.uniform(0.0, TICK)  # somewhere between two ticks
            reached = None
            while reached is None and now < step_at + 60.0:
                fleet.set_load(80.0 if now >= step_at else 8.0)
                desired, seconds = await tick(scaler, scraper, fleet, now)
                fleet.resize(desired)
                if desired >= 10:
                    reached = now + seconds - step_at
                now += TICK
            times.append(reached if reached is not None else math.inf)
    return {
        "runs": runs,
        "seconds": times,
        "seconds_max": max(times),
        "seconds_median": statistics.median(times),
        "target_seconds": 4.0,
        "ok": max(times) <= 4.0,
    }


async def bench_noise(servers: MetricsPods, minutes: float) -> dict[str, Any]:
    results = []
    async with MetricsScraper(timeout=1.0) as scraper:
        for load in (8.0, 20.0, 40.0, 44.0, 60.0, 100.0):
            for seed in (1, 2):
                rng = random.Random(seed)
                fleet = Fleet(servers, rng, noise=0.3)
                start = math.ceil(load / TARGET)
                fleet.resize(start)
                scaler = Autoscaler(config(), initial_replicas=start)
                now, last_direction, previous = 0.0, 0, start
                changes: list[float] = []
                scale_events = 0
                while now < minutes * 60.0:
                    fleet.set_load(load)
                    desired, _ = await tick(scaler, scraper, fleet, now)
                    direction = (desired > previous) - (desired < previous)
                    if direction:
                        scale_events += 1
                        if last_direction and direction != last_direction:
                            changes.append(now)
                        last_direction = direction
                    previous = desired
                    fleet.resize(desired)
                    now += TICK
                worst = max((len([c for c in changes if at - 60.0 < c <= at]) for at in changes), default=0)
                results.append(
                    {
                        "load": load,
                        "seed": seed,
                        "scale_events": scale_events,
                        "direction_changes": len(changes),
                        "max_changes_per_stable_window": worst,
                    }
                )
    worst = max(r["max_changes_per_stable_window"] for r in results)
    return {
        "minutes_per_run": minutes,
        "runs": results,
        "max_changes_per_stable_window": worst,
        "target": 1,
        "ok": worst <= 1,
    }


async def bench_scrape(servers: MetricsPods, pods: int, ticks: int) -> dict[str, Any]:
    fleet = Fleet(servers, random.Random(3))
    fleet.resize(pods)
    fleet.set_load(pods * 5.0)
    walls: list[float] = []
    cpus: list[float] = []
    async with MetricsScraper(timeout=1.0) as scraper:
        await scraper.scrape(fleet.targets(), INFLIGHT_METRIC)  # warm the connection pool
        for _ in range(ticks):
            wall, cpu = time.perf_counter(), time.process_time()
            scrapes = await scraper.scrape(fleet.targets(), INFLIGHT_METRIC)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            assert all(s.value is not None for s in scrapes), [s.problem for s in scrapes if s.problem]
    walls.sort()
    return {
        "pods": pods,
        "ticks": ticks,
        "wall_ms_median": 1000 * statistics.median(walls),
        "wall_ms_p95": 1000 * walls[int(0.95 * (len(walls) - 1))],
        "cpu_ms_median": 1000 * statistics.median(cpus),
        "note": "CPU time covers this process: the scraper and the 50 fake pod servers together",
    }


async def bench_controller_tick(servers: MetricsPods, pods: int, ticks: int) -> dict[str, Any]:
    """Whole controller ticks against the emulator: GET Deployment, LIST 50 pods, scrape 50, decide."""
    import tempfile

    from autoscaling_cluster import NS, Serving, create_deployment, create_md
    from kube_emulator.fixtures import start_kube
    from trtforge_operator.apply import Kube as ApiKube
    from trtforge_operator.autoscaling.controller import AutoscalerController
    from trtforge_runtime.spec.model import API_VERSION, KIND

    with tempfile.TemporaryDirectory() as tmp:
        thread, cluster = start_kube(Path(tmp))
        try:
            cluster.create_namespace(NS)
            md = create_md(cluster, minReplicas=pods, maxReplicas=pods, target=8)
            create_deployment(cluster, md, replicas=pods)
            serving = Serving(cluster, servers, capacity=pods)
            serving.kubelet()
            serving.load(pods * 8.0)
            md = cluster.get(API_VERSION, KIND, "digits", NS)
            kube = ApiKube(cluster.client())
            controller = AutoscalerController(kube, namespace=NS, name="digits")
            walls: list[float] = []
            for _ in range(ticks):
                started = time.perf_counter()
                result = await controller.tick(md)
                walls.append(time.perf_counter() - started)
                assert len(result.scrapes) == pods and all(s.value is not None for s in result.scrapes)
            await controller.close()
            kube.close()
        finally:
            thread.stop()
    walls.sort()
    return {
        "pods": pods,
        "ticks": ticks,
        "wall_ms_median": 1000 * statistics.median(walls),
        "wall_ms_p95": 1000 * walls[int(0.95 * (len(walls) - 1))],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    servers = MetricsPods().start()
    try:
        return {
            "step_10x": await bench_step(servers, args.runs),
            "noise_30pct": await bench_noise(servers, args.minutes),
            "scrape": await bench_scrape(servers, 50, args.ticks),
            "controller_tick": await bench_controller_tick(servers, 50, max(10, args.ticks // 4)),
        }
    finally:
        servers.stop()


def record(repeats: list[dict[str, Any]], args: argparse.Namespace, command: str) -> Path:
    """benchmarks/results/autoscaler.json from every repeat of the suite."""
    steps = [t for r in repeats for t in r["step_10x"]["seconds"]]
    worst = max(r["noise_30pct"]["max_changes_per_stable_window"] for r in repeats)
    events = [sum(x["scale_events"] for x in r["noise_30pct"]["runs"]) for r in repeats]
    noise_runs = repeats[0]["noise_30pct"]["runs"]
    levels = len({x["load"] for x in noise_runs})
    seeds = len({x["seed"] for x in noise_runs})
    hours = len(noise_runs) * args.minutes / 60.0
    scrape_wall = [r["scrape"]["wall_ms_median"] for r in repeats]
    scrape_p95 = [r["scrape"]["wall_ms_p95"] for r in repeats]
    scrape_cpu = [r["scrape"]["cpu_ms_median"] for r in repeats]
    tick_wall = [r["controller_tick"]["wall_ms_median"] for r in repeats]
    pods = repeats[0]["scrape"]["pods"]
    values = {
        "step_seconds": fmt(steps, "s", 2),
        "step_seconds_max": f"{max(steps):.2f} s",
        "noise_max_changes": str(worst),
        "noise_scale_events": fmt(events, "", 0),
        "scrape_wall_ms": fmt(scrape_wall, "ms", 1),
        "scrape_p95_ms": fmt(scrape_p95, "ms", 1),
        "scrape_cpu_ms": fmt(scrape_cpu, "ms", 1),
        "tick_wall_ms": fmt(tick_wall, "ms", 1),
    }
    rows = [
        [
            "10x load step -> desired replicas decided",
            f"{values['step_seconds']} over all steps, max {values['step_seconds_max']}",
            "<= 4 s",
        ],
        [
            f"steady load +-30 % noise per pod and tick, "
            f"{levels} levels x {seeds} seeds x {args.minutes:g} min",
            f"at most {worst} direction change(s) per 60 s window; scale events in "
            f"{hours:g} simulated h: {values['noise_scale_events']}",
            "<= 1",
        ],
        [
            f"scrape of {pods} pods per tick",
            f"wall median {values['scrape_wall_ms']}, p95 {values['scrape_p95_ms']}, "
            f"CPU {values['scrape_cpu_ms']} (scraper + {pods} fake pods)",
            "",
        ],
        [
            f"whole controller tick, {pods} pods, against the emulator",
            f"wall median {values['tick_wall_ms']}",
            "",
        ],
    ]
    return write(
        "autoscaler",
        command=command,
        runs=len(repeats),
        tables={"figures": {"columns": ["what", "figure", "target"], "rows": rows}},
        values=values,
        data=repeats,
        packages=["aiohttp", "kubernetes", "prometheus-client"],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="10x steps measured per repeat")
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated minutes per noise run")
    parser.add_argument("--ticks", type=int, default=100, help="50-pod scrapes measured per repeat")
    parser.add_argument("--repeat", type=int, default=3, help="times the whole suite runs")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    args = parser.parse_args()
    repeats = []
    ok = True
    for i in range(args.repeat):
        figures = asyncio.run(main_async(args))
        repeats.append(figures)
        print(f"-- repeat {i + 1}/{args.repeat}")
        ok = summary(figures) and ok
    if args.json:
        args.json.write_text(json.dumps(repeats, indent=2) + "\n")
    if not args.no_record:
        command = "python benchmarks/autoscaler_bench.py " + " ".join(sys.argv[1:])
        print(f"wrote {record(repeats, args, command.strip())}")
    return 0 if ok else 1


def summary(figures: dict[str, Any]) -> bool:
    step, noise, scrape = figures["step_10x"], figures["noise_30pct"], figures["scrape"]
    print(
        f"10x step -> desired replicas: max {step['seconds_max']:.2f} s, median "
        f"{step['seconds_median']:.2f} s over {step['runs']} runs (target <= 4 s): "
        f"{'OK' if step['ok'] else 'MISSED'}"
    )
    print(
        f"+-30% noise: at most {noise['max_changes_per_stable_window']} direction change(s) per 60 s stable "
        f"window over {len(noise['runs'])} runs of {noise['minutes_per_run']:g} simulated minutes "
        f"(target <= 1): {'OK' if noise['ok'] else 'MISSED'}; total scale events "
        f"{sum(r['scale_events'] for r in noise['runs'])}"
    )
    print(
        f"scrape of {scrape['pods']} pods per tick: wall median {scrape['wall_ms_median']:.1f} ms, p95 "
        f"{scrape['wall_ms_p95']:.1f} ms, CPU median {scrape['cpu_ms_median']:.1f} ms"
    )
    tick = figures["controller_tick"]
    print(
        f"whole controller tick with {tick['pods']} pods against the emulator: wall median "
        f"{tick['wall_ms_median']:.1f} ms, p95 {tick['wall_ms_p95']:.1f} ms"
    )
    return bool(step["ok"] and noise["ok"])


if __name__ == "__main__":
    sys.exit(main())
