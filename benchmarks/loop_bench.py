"""The whole loop on the cluster in a box, timed: phase wall times, replicas under load, requests lost.

    python benchmarks/loop_bench.py --runs 2        # -> benchmarks/results/loop.json

Each run is tests/cluster_box's scenario (`run_loop`, with all its checks): `kubectl apply -f
examples/digits.yaml` on the test API server with a real operator process, the Jobs and serving pods run
as local processes, the operator SIGKILLed during Training and Deploying, predictions over HTTP and
gRPC, closed-loop load through the Service's proxy (8 clients, then 1, then 2 during a rollout), a
failing quality gate and the deletion. Figures are medians over the runs with their spread.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from cluster_box.scenario import BoxCluster, DigitsLoop, run_loop  # noqa: E402

from benchmarks.results import fmt, write  # noqa: E402

PHASES = ["Training", "Converting", "Deploying", "total to Ready"]
STEPS = [
    "scale up under load",
    "scale down under load",
    "rollout under load",
    "quality gate failure",
    "deletion",
]
REQUESTS = ["scale-up", "scale-down", "rollout", "after gate failure"]


def timeline_text(rows: list[dict[str, Any]], every: float = 2.0) -> str:
    """`t:wanted/ready` every `every` seconds (and at each change of the wanted count)."""
    out, last_t, last_wanted = [], -every, None
    for r in rows:
        if r["t"] - last_t >= every or r["replicas"] != last_wanted:
            out.append(f"{r['t']:.0f}s:{r['replicas']}/{r['ready']}")
            last_t, last_wanted = r["t"], r["replicas"]
    return " ".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    reports = []
    for i in range(args.runs):
        with (
            tempfile.TemporaryDirectory(prefix="trtforge-loop-") as tmp,
            DigitsLoop(BoxCluster(Path(tmp))) as loop,
        ):
            print(f"--- run {i + 1}/{args.runs}", flush=True)
            started = time.monotonic()
            report = run_loop(loop, strict=False)
            report["total_seconds"] = round(time.monotonic() - started, 1)
            reports.append(report)
    phases = {p: [r["phases"][p] for r in reports if p in r["phases"]] for p in PHASES}
    steps = {s: [r["steps"][s] for r in reports] for s in STEPS}
    tables: dict[str, dict[str, Any]] = {
        "phases": {
            "columns": ["phase", "wall time"],
            "rows": [[p, fmt(v, "s")] for p, v in phases.items()]
            + [[s, fmt(v, "s")] for s, v in steps.items()],
        },
        "requests": {
            "columns": ["during", "ok requests", "failed requests"],
            "rows": [
                [
                    name,
                    fmt([r["requests"][name]["ok"] for r in reports]),
                    " / ".join(str(r["requests"][name]["failed"]) for r in reports),
                ]
                for name in REQUESTS
            ],
        },
        "replicas": {
            "columns": ["run", "load", "replicas over time (wanted/ready)"],
            "rows": [
                [str(i + 1), name, timeline_text(r["timeline"][name])]
                for i, r in enumerate(reports)
                for name in ("scale-up", "scale-down", "rollout")
            ],
        },
    }
    values = {
        "to_ready": fmt(phases["total to Ready"], "s"),
        "total": fmt([r["total_seconds"] for r in reports], "s"),
        "rollout_failed": " / ".join(str(r["requests"]["rollout"]["failed"]) for r in reports),
        "scale_down_failed": " / ".join(str(r["requests"]["scale-down"]["failed"]) for r in reports),
        "accuracy_http": fmt([r["accuracy"]["http"] for r in reports], digits=3),
        "accuracy_grpc": fmt([r["accuracy"]["grpc"] for r in reports], digits=3),
    }
    path = write(
        "loop",
        command=f"python benchmarks/loop_bench.py --runs {args.runs}",
        runs=args.runs,
        tables=tables,
        values=values,
        data=reports,
        packages=["kopf", "kubernetes", "tensorflow-cpu", "onnxruntime", "tritonclient"],
    )
    for name, table in tables.items():
        print(name)
        for row in table["rows"]:
            print("  " + " | ".join(row))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
