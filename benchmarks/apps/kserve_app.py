"""KServe's Python ModelServer serving the benchmark's digits ONNX model with the V2 protocol.

Started by benchmarks/serving_bench.py in its own virtual environment:
`python kserve_app.py --model_name digits --model_path model.onnx --http_port N --enable_grpc false`.
"""

from __future__ import annotations

import argparse
import logging
import uuid

import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server


class DigitsModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name
        self.ready = True
        return self.ready

    async def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:  # type: ignore[no-untyped-def, override]
        x = payload.inputs[0].as_numpy()
        y = self.session.run([self.output], {self.input: x})[0]
        binary = bool(payload.request_outputs) and any(
            (o.parameters or {}).get("binary_data") for o in payload.request_outputs
        )
        out = InferOutput(name=self.output, shape=list(y.shape), datatype="FP32")
        out.set_data_from_numpy(y, binary_data=binary)
        return InferResponse(
            model_name=self.name, infer_outputs=[out], response_id=payload.id or str(uuid.uuid4())
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    server = ModelServer()
    # no per-request log lines (access log, timing trace), as for every server in the benchmark
    for noisy in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    server.start([DigitsModel(args.model_name, args.model_path)])
