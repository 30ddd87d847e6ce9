"""The digits MLP on NVIDIA Triton Inference Server (the `tritonserver` shipped in `nvidia-pytriton`).

Triton's HTTP/gRPC front ends and dynamic batcher (at most 64 rows or 2 ms, as trtforge's defaults)
in front of its Python backend, which pytriton proxies to this process, where onnxruntime runs the
network on one intra-op thread. Run in its own virtual environment (numpy < 2), with the interpreter's
lib folder first in LD_LIBRARY_PATH (benchmarks/serving_bench.py sets both):

    python benchmarks/apps/triton_app.py --model digits.onnx --http-port 8000
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--name", default="digits")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    args = p.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name

    @batch  # type: ignore[misc]
    def infer(**inputs: np.ndarray) -> dict[str, Any]:
        return {output_name: session.run([output_name], {input_name: inputs[input_name]})[0]}

    config = TritonConfig(
        http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port, log_verbose=0
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=args.name,
            infer_func=infer,
            inputs=[Tensor(name=input_name, dtype=np.float32, shape=(64,))],
            outputs=[Tensor(name=output_name, dtype=np.float32, shape=(10,))],
            config=ModelConfig(max_batch_size=64, batcher=DynamicBatcher(max_queue_delay_microseconds=2000)),
        )
        triton.serve()


if __name__ == "__main__":
    main()
