"""The whole loop for real on the cluster in a box (tests/cluster_box): train, convert, serve, scale,
roll out, survive operator crashes, fail a quality gate, delete. docs/e2e.md describes it.

`run_loop` checks every step as it goes (the same checks run in benchmarks/loop_bench.py); the asserts
here restate the headline claims on the report, which is printed for the run's log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster_box.scenario import BoxCluster, DigitsLoop, run_loop


def show(report: dict[str, Any], log: Callable[[str], None]) -> None:
    log(json.dumps({k: v for k, v in report.items() if k != "timeline"}, indent=1))
    for name, rows in report["timeline"].items():
        cells = [f"{r['t']}s:{r['replicas']}/{r['ready']}/{r['pods']}+{r['terminating']}" for r in rows]
        log(f"timeline {name} (wanted/ready/pods+terminating): " + " ".join(cells))


@pytest.mark.slow
def test_digits_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def log(message: str) -> None:  # progress in the test output as it happens, also without -s
        with capsys.disabled():
            print(message, flush=True)

    with DigitsLoop(BoxCluster(tmp_path), log=log) as loop:
        try:
            report = run_loop(loop)
        finally:  # the figures also when a step failed
            show(loop.report, log)
    assert report["phase_order"][-4:] == ["Training", "Converting", "Deploying", "Ready"]
    assert report["accuracy"]["http"] >= 0.9 and report["accuracy"]["grpc"] >= 0.9
    assert max(r["ready"] for r in report["timeline"]["scale-up"]) == 3
    for step in ("scale-down", "rollout", "after gate failure"):
        assert report["requests"][step]["failed"] == 0 and report["requests"][step]["ok"] > 0, step
    assert "minAccuracy" in report["gate_message"]
