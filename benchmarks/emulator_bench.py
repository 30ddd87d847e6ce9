"""Cost of the test API server (tests/kube_emulator): start-up and per-request latency.

    python benchmarks/emulator_bench.py [--runs 3] [--starts 20] [--requests 2000] [--objects 10]

1. start: a fresh emulator with the project CRD installed (`start_kube`), --starts times in one process;
   the first start (imports, YAML parsing) separately from the median of the others.
2. latency: the official `kubernetes` client's round trip, GET and PATCH of one ConfigMap alternating;
   median of the first 200 requests and of 200 requests after --requests in all, per run (a fresh
   emulator each): the cost must not grow with the number of requests served.
3. kopf round trip: kopf (in a thread, as tests/kube_emulator_tests/test_kopf.py runs it) with one create
   handler that patches status.phase; --objects ModelDeployments created one after another, each timed
   from the create request until the test client reads the phase back (polling every 2 ms); the median
   per run (a fresh emulator each).

Writes benchmarks/results/emulator.json, which docs/testing.md renders.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import kopf  # noqa: E402
import yaml  # noqa: E402
from kube_emulator.fixtures import start_kube  # noqa: E402
from kubernetes import client  # noqa: E402

from benchmarks.results import fmt, write  # noqa: E402


def starts(n: int) -> list[float]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            t0 = time.perf_counter()
            thread, _ = start_kube(Path(tmp) / str(i))
            out.append(time.perf_counter() - t0)
            thread.stop()
    return out


def latency(requests: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        thread, kube = start_kube(Path(tmp))
        api = kube.client()
        try:
            core = client.CoreV1Api(api)
            core.create_namespaced_config_map("default", {"metadata": {"name": "probe"}, "data": {"n": "0"}})

            def batch(n: int) -> list[float]:
                out = []
                for i in range(n):
                    t0 = time.perf_counter()
                    if i % 2:
                        core.patch_namespaced_config_map("probe", "default", {"data": {"n": str(i)}})
                    else:
                        core.read_namespaced_config_map("probe", "default")
                    out.append(time.perf_counter() - t0)
                return out

            first = statistics.median(batch(200))
            batch(max(0, requests - 400))
            last = statistics.median(batch(200))
        finally:
            api.close()
            thread.stop()
    return {"first_200_ms": first * 1000, "last_200_ms": last * 1000}


def _status_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.create("trtforge.dev", "v1alpha1", "modeldeployments", registry=registry, id="created")
    def created(body: Any, patch: Any, **_: Any) -> None:
        patch.status["phase"] = "Training"
        patch.status["observedGeneration"] = body["metadata"]["generation"]

    return registry


def _finalizer(settings: kopf.OperatorSettings) -> None:
    settings.persistence.finalizer = "trtforge.dev/bench-finalizer"


def kopf_round_trip(objects: int) -> list[float]:
    """Seconds from each ModelDeployment's create request until its status.phase is read back."""
    md = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        thread, kube = start_kube(Path(tmp))
        try:
            with kube.run_operator(registry=_status_registry(), settings=_finalizer):
                for i in range(objects):
                    name = f"lat-{i}"
                    body = {**md, "metadata": {**md["metadata"], "name": name}}
                    t0 = time.perf_counter()
                    kube.create(body)

                    def phase(name: str = name) -> bool:
                        obj = kube.get("trtforge.dev/v1alpha1", "ModelDeployment", name, "default") or {}
                        return (obj.get("status") or {}).get("phase") == "Training"

                    kube.wait_for(phase, 60, interval=0.002, message=f"status of {name}")
                    out.append(time.perf_counter() - t0)
        finally:
            thread.stop()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--starts", type=int, default=20)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--objects", type=int, default=10)
    p.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    args = p.parse_args()
    start_times = starts(args.starts)
    first_start, later_starts = start_times[0], start_times[1:]
    median_start = statistics.median(later_starts) * 1000
    print(f"start: first {first_start * 1000:.0f} ms, then median {median_start:.1f} ms")
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        r = latency(args.requests)
        runs.append(r)
        first, last = r["first_200_ms"], r["last_200_ms"]
        r["kopf_round_trip_ms"] = statistics.median(kopf_round_trip(args.objects)) * 1000
        print(
            f"run {i + 1}/{args.runs}: first 200 {first:.2f} ms, last 200 {last:.2f} ms, "
            f"kopf create -> status median {r['kopf_round_trip_ms']:.0f} ms"
        )
    if args.no_record:
        return 0
    growth = [r["last_200_ms"] / r["first_200_ms"] for r in runs]
    values = {
        "start_first_ms": f"{first_start * 1000:.0f} ms",
        "start_ms": fmt([s * 1000 for s in later_starts], "ms", 1),
        "first_200_ms": fmt([r["first_200_ms"] for r in runs], "ms", 2),
        "last_200_ms": fmt([r["last_200_ms"] for r in runs], "ms", 2),
        "growth": fmt(growth, "x", 2),
        "requests": f"{args.requests:,}",
        "kopf_round_trip_ms": fmt([r["kopf_round_trip_ms"] for r in runs], "ms", 0),
        "objects": str(args.objects),
    }
    path = write(
        "emulator",
        command="python benchmarks/emulator_bench.py " + " ".join(sys.argv[1:]),
        runs=args.runs,
        values=values,
        data={
            "start_seconds": start_times,
            "latency": runs,
            "requests": args.requests,
            "objects": args.objects,
        },
        packages=["kubernetes", "aiohttp", "kopf"],
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
