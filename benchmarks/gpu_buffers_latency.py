"""Latency of the TensorRT backends' pycuda path (pinned copy in, device work, copy out, synchronize).

Measures `trt.cuda_buffers.StreamBuffers.run` with a device-to-device copy standing where the engine runs,
for the digits model's tensor sizes (64 FP32 in, 10 FP32 out per row), so the fixed per-call cost the
GPU backends add to a batch is known. Needs a CUDA GPU and pycuda: run it on the GPU test machine with
PYTHONPATH=runtime (see shared/device/README.md). Prints one line per batch size.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from trtforge_runtime.trt.cuda_buffers import BufferSpec, CudaContext, StreamBuffers, cuda_driver


def main() -> None:
    cuda = cuda_driver()
    ctx = CudaContext(0)
    f32 = np.dtype(np.float32)
    with ctx.active():
        buf = StreamBuffers([BufferSpec("x", f32, (256, 64), True), BufferSpec("y", f32, (256, 10), False)])

        def enqueue(b: StreamBuffers, rows: int) -> dict[str, tuple[int, ...]]:
            cuda.memcpy_dtod_async(b.device_address("y"), b.device_address("x"), rows * 10 * 4, b.stream)
            return {"y": (rows, 10)}

        print(f"device: {ctx.name} (compute capability {ctx.compute_capability})")
        for rows in (1, 32, 256):
            x = np.random.default_rng(0).normal(size=(rows, 64)).astype(np.float32)
            for _ in range(200):
                buf.run({"x": x}, lambda b, r=rows: enqueue(b, r))
            times = []
            for _ in range(2000):
                t0 = time.perf_counter()
                out = buf.run({"x": x}, lambda b, r=rows: enqueue(b, r))
                times.append(time.perf_counter() - t0)
            assert np.array_equal(out["y"].ravel(), x.ravel()[: rows * 10])
            q = statistics.quantiles(times, n=100)
            print(f"rows={rows:4d}: p50 {q[49] * 1e6:7.1f} us  p99 {q[98] * 1e6:7.1f} us")
        buf.free()
    ctx.close()


if __name__ == "__main__":
    main()
