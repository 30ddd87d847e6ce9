"""Tensor descriptions and datatype names, shared by train, convert and serve.

The Open Inference Protocol (V2) names datatypes (`FP32`, `INT64`...); ONNX numbers them and
onnxruntime spells them `tensor(float)`. The manifest, engine.json and the V2 metadata all describe a
tensor as `{name, shape (-1 = dynamic), datatype}`: this module holds those mappings and that description
once, so an ONNX model is described the same way at every stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# ONNX TensorProto element types -> V2 datatypes
ONNX_TO_V2: dict[int, str] = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "BYTES",
    9: "BOOL",
    10: "FP16",
    11: "FP64",
    12: "UINT32",
    13: "UINT64",
    16: "BF16",
}

# onnxruntime NodeArg.type strings -> V2 datatypes
ORT_TO_V2: dict[str, str] = {
    "tensor(float)": "FP32",
    "tensor(float16)": "FP16",
    "tensor(double)": "FP64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}

# The datatypes trtforge converts and serves as model inputs and outputs (TensorRT, TensorRT-RTX and
# onnxruntime all take them); BYTES (strings) is refused: TensorRT has no string tensors.
SUPPORTED_DATATYPES = ("FP32", "FP16", "INT8", "UINT8", "INT32", "INT64", "BOOL")


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output: name, shape (-1 for dynamic dimensions), V2 datatype."""

    name: str
    shape: tuple[int, ...]
    datatype: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "datatype": self.datatype}


def onnx_io(model: Any) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Inputs (initializers excluded) and outputs of a loaded ONNX ModelProto."""
    initializers = {i.name for i in model.graph.initializer}

    def info(value: Any) -> TensorInfo:
        t = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim)
        return TensorInfo(value.name, dims, ONNX_TO_V2.get(t.elem_type, f"ONNX{t.elem_type}"))

    inputs = [info(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [info(v) for v in model.graph.output]
