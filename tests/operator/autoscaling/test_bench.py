"""Smoke test of benchmarks/autoscaler_bench.py with tiny parameters, so that it keeps working."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "autoscaler_bench.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("autoscaler_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["autoscaler_bench"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_benchmark_runs_and_meets_its_targets() -> None:
    bench = load_bench()
    args = bench.argparse.Namespace(runs=3, minutes=1.0, ticks=4)
    figures = asyncio.run(bench.main_async(args))
    assert figures["step_10x"]["ok"] and figures["step_10x"]["seconds_max"] <= 4.0
    assert figures["noise_30pct"]["ok"]
    assert figures["scrape"]["pods"] == 50 and figures["scrape"]["wall_ms_median"] > 0
    assert figures["controller_tick"]["pods"] == 50
