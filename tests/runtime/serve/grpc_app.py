"""A gRPC-only server over the real DataPlane for the gRPC front-end tests, run as a child process.

The tests' tritonclient.grpc registers the same `inference.*` protobuf symbols as trtforge's stubs, and
one process cannot hold both, so the server under test lives in its own process. It serves two models
whose outputs the tests recompute: `mlp` (digits-shaped: FP32 [-1, 64] -> softmax FP32 [-1, 10] with
weights from `weights(seed)`) and `echo` (INT64, BOOL, FP16 and INT32 inputs, each returned transformed).
Prints `PORT <n>` once serving; SIGTERM drains and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import numpy as np
from trtforge_runtime.serve.dataplane import DataPlane, ServedModel
from trtforge_runtime.serve.grpc_server import start_grpc
from trtforge_runtime.serve.types import ModelMetadata, TensorSpec


def weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(64, 10)).astype(np.float32) * 0.1, rng.normal(size=10).astype(np.float32)


def mlp(x: np.ndarray, seed: int = 0) -> np.ndarray:
    w, b = weights(seed)
    z = x @ w + b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each mlp call takes")
    args = parser.parse_args()

    dp = DataPlane(request_timeout=10.0)

    async def run_mlp(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if args.delay:
            await asyncio.sleep(args.delay)
        return {"probabilities": mlp(inputs["pixels"])}

    async def run_echo(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            "ids_out": inputs["ids"] * 2,
            "mask_out": ~inputs["mask"],
            "half_out": (inputs["half"] + np.float16(1)).astype(np.float16),
            "counts_out": inputs["counts"] - 1,
        }

    dp.add_model(
        ServedModel(
            name="mlp",
            version="1",
            metadata=ModelMetadata(
                "mlp",
                ("1",),
                "onnxruntime_onnx",
                (TensorSpec("pixels", "FP32", (-1, 64)),),
                (TensorSpec("probabilities", "FP32", (-1, 10)),),
            ),
            infer=run_mlp,
            ready=True,
        )
    )
    dp.add_model(
        ServedModel(
            name="echo",
            version="1",
            metadata=ModelMetadata(
                "echo",
                ("1",),
                "python",
                (
                    TensorSpec("ids", "INT64", (-1, 3)),
                    TensorSpec("mask", "BOOL", (-1, 3)),
                    TensorSpec("half", "FP16", (-1, 3)),
                    TensorSpec("counts", "INT32", (-1, 3)),
                ),
                (
                    TensorSpec("ids_out", "INT64", (-1, 3)),
                    TensorSpec("mask_out", "BOOL", (-1, 3)),
                    TensorSpec("half_out", "FP16", (-1, 3)),
                    TensorSpec("counts_out", "INT32", (-1, 3)),
                ),
            ),
            infer=run_echo,
            ready=True,
        )
    )
    server = await start_grpc(dp, "127.0.0.1", args.port, max_message_bytes=1024 * 1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(f"PORT {server.port}", flush=True)
    await stop.wait()
    dp.begin_drain()
    await server.stop(grace=5.0)
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
