"""Latency of the TensorRT backends' pycuda path (pinned copy in, device work, copy out, synchronize).

    python3 benchmarks/gpu_buffers_latency.py [--runs 5] [--calls 2000]

Measures `trt.cuda_buffers.StreamBuffers.run` with a device-to-device copy standing where the engine runs,
for the digits model's tensor sizes (64 FP32 in, 10 FP32 out per row), so the fixed per-call cost the
GPU backends add to a batch is known. Needs a CUDA GPU and pycuda: run it on the GPU test machine with
PYTHONPATH=runtime (docs/gpu-tests.md). Prints one line per batch size and run, and writes
benchmarks/results/gpu_buffers.json: per batch size, the median over the runs of each run's p50 and p99,
with their range (docs/gpu-tests.md renders it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import fmt, write

ROWS = (1, 32, 256)


def measure(runs: int, calls: int) -> dict[int, dict[str, list[float]]]:
    """{rows: {"p50_us": [per run], "p99_us": [per run]}}."""
    from trtforge_runtime.trt.cuda_buffers import BufferSpec, CudaContext, StreamBuffers, cuda_driver

    cuda = cuda_driver()
    ctx = CudaContext(0)
    f32 = np.dtype(np.float32)
    out: dict[int, dict[str, list[float]]] = {r: {"p50_us": [], "p99_us": []} for r in ROWS}
    with ctx.active():
        buf = StreamBuffers([BufferSpec("x", f32, (256, 64), True), BufferSpec("y", f32, (256, 10), False)])

        def enqueue(b: StreamBuffers, rows: int) -> dict[str, tuple[int, ...]]:
            cuda.memcpy_dtod_async(b.device_address("y"), b.device_address("x"), rows * 10 * 4, b.stream)
            return {"y": (rows, 10)}

        print(f"device: {ctx.name} (compute capability {ctx.compute_capability})")
        for run in range(runs):
            for rows in ROWS:
                x = np.random.default_rng(run).normal(size=(rows, 64)).astype(np.float32)
                for _ in range(200):
                    buf.run({"x": x}, lambda b, r=rows: enqueue(b, r))
                times = []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    result = buf.run({"x": x}, lambda b, r=rows: enqueue(b, r))
                    times.append(time.perf_counter() - t0)
                assert np.array_equal(result["y"].ravel(), x.ravel()[: rows * 10])
                q = statistics.quantiles(times, n=100)
                out[rows]["p50_us"].append(q[49] * 1e6)
                out[rows]["p99_us"].append(q[98] * 1e6)
                p50, p99 = q[49] * 1e6, q[98] * 1e6
                print(f"run {run + 1}/{runs} rows={rows:4d}: p50 {p50:7.1f} us  p99 {p99:7.1f} us")
        buf.free()
    ctx.close()
    return out


def table(figures: dict[int, dict[str, list[float]]]) -> dict[str, dict[str, list]]:
    rows = [[str(r), fmt(f["p50_us"], "µs", 1), fmt(f["p99_us"], "µs", 1)] for r, f in figures.items()]
    return {"latency": {"columns": ["rows per call", "p50", "p99"], "rows": rows}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--calls", type=int, default=2000, help="timed calls per batch size and run")
    p.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    args = p.parse_args()
    figures = measure(args.runs, args.calls)
    if not args.no_record:
        path = write(
            "gpu_buffers",
            command="python3 benchmarks/gpu_buffers_latency.py " + " ".join(sys.argv[1:]),
            runs=args.runs,
            tables=table(figures),
            values={f"p50_rows{r}": fmt(f["p50_us"], "µs", 1) for r, f in figures.items()},
            data={"calls_per_run": args.calls, "by_rows": {str(r): f for r, f in figures.items()}},
            packages=["pycuda", "numpy"],
        )
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
