"""Operator failover: two `trtforge operator` replicas against the test API server, SIGKILL the leader.

    python benchmarks/failover_bench.py [--runs 5]

Each run (tests/operator/failover.py): replica A takes the Lease, replica B stands by, the digits
ModelDeployment is applied (only A acts), A is killed with SIGKILL and the training Job completes while
nobody leads. Measured from the kill: until B's /readyz says `leader`, and until B has created the
conversion Job (the pipeline moving on). A graceful stop (SIGTERM: the leader releases the Lease) is
measured the same way. Lease timing is controller-runtime's default: 15 s duration, 10 s renew
deadline, 2 s retry period (x 1.2 jitter); the goal for a crash is <= 20 s.
Writes benchmarks/results/failover.json (benchmarks/results.py), which README.md and docs/operator.md
render.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "operator"))
sys.path.insert(0, str(REPO))

from failover import failover  # noqa: E402
from kube_emulator.fixtures import start_kube  # noqa: E402

from benchmarks.results import fmt, write  # noqa: E402

GOAL_S = 20.0


def run_once(graceful: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        thread, kube = start_kube(Path(tmp))
        try:
            return failover(kube, Path(tmp), graceful=graceful)
        finally:
            thread.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="fresh API server + two operators each")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"kill": [], "graceful": []}
    for i in range(args.runs):
        for kind in runs:
            got = run_once(graceful=kind == "graceful")
            if got["b_writes"]:
                raise SystemExit(f"run {i}: the standby wrote to the API: {got['b_writes'][:3]}")
            runs[kind].append(got)
            print(
                f"run {i + 1}/{args.runs} {kind}: old leader gone after {got['stop_s']:.2f} s, "
                f"standby leads after {got['leader_s']:.2f} s, "
                f"conversion Job after {got['acting_s']:.2f} s",
                flush=True,
            )
    figures = {
        kind: {
            "leader": [r["leader_s"] for r in rs],
            "acting": [r["acting_s"] for r in rs],
        }
        for kind, rs in runs.items()
    }
    rows = [
        [
            "SIGKILL (no release)",
            fmt(figures["kill"]["leader"], "s", digits=1),
            fmt(figures["kill"]["acting"], "s", digits=1),
        ],
        [
            "SIGTERM (Lease released)",
            fmt(figures["graceful"]["leader"], "s", digits=1),
            fmt(figures["graceful"]["acting"], "s", digits=1),
        ],
    ]
    for row in rows:
        print(" | ".join(row))
    worst = max(figures["kill"]["acting"])
    verdict = "met" if worst <= GOAL_S else "MISSED"
    print(f"goal <= {GOAL_S:g} s after a crash: worst {worst:.1f} s ({verdict})")
    if not args.no_record:
        path = write(
            "failover",
            command=f"python benchmarks/failover_bench.py --runs {args.runs}",
            runs=args.runs,
            tables={
                "failover": {
                    "columns": ["leader stopped by", "standby leads after", "pipeline moves on after"],
                    "rows": rows,
                }
            },
            values={
                "kill_acting": fmt(figures["kill"]["acting"], "s", digits=1),
                "graceful_acting": fmt(figures["graceful"]["acting"], "s", digits=1),
                "median_kill_acting": f"{statistics.median(figures['kill']['acting']):.1f} s",
            },
            data=figures,
            packages=["kopf", "kubernetes"],
        )
        print(f"wrote {path}")
    return 0 if worst <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
