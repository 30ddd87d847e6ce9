"""gRPC `ModelInferRequest` / `ModelInferResponse` messages <-> the transport-neutral `types`.

Tensor data comes either as `raw_input_contents` (little-endian bytes, one entry per input; decoded into
zero-copy numpy views) or as typed `contents` (one repeated field per element type). Every malformed
message becomes an `InferenceError` that names the tensor and the expected vs received value. A response
carries `raw_output_contents` when the request sent raw inputs (what Triton's and KServe's clients do) or
when an output has no typed field (FP16); otherwise typed contents, mirroring the request.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtforge_runtime.errors import InferenceError
from trtforge_runtime.serve.grpc_gen import grpc_predict_v2_pb2 as pb
from trtforge_runtime.serve.types import (
    InferRequest,
    InferResponse,
    Parameters,
    RequestedOutput,
    Tensor,
    array_from_bytes,
    check_shape,
    dtype_of,
    element_count,
)

# V2 datatype -> the InferTensorContents field that carries it (FP16/BF16 have none: raw only)
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
_ALL_FIELDS = (*sorted(set(CONTENTS_FIELD.values())), "bytes_contents")


def parameters_from_proto(params: Any) -> Parameters:
    """`map<string, InferParameter>` -> plain dict (bool, int or str values)."""
    out: Parameters = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, which) if which else None
    return out


def parameters_to_proto(target: Any, params: Parameters) -> None:
    for key, value in params.items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif value is not None:
            target[key].string_param = str(value)


def _shape(tensor: Any) -> tuple[int, ...]:
    name = tensor.name or "<unnamed>"
    return check_shape(name, [int(d) for d in tensor.shape])


def _from_contents(name: str, datatype: str, shape: tuple[int, ...], contents: Any) -> np.ndarray:
    dtype = dtype_of(datatype, name)
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InferenceError(
            f"tensor '{name}': {datatype} has no typed contents field; send it in raw_input_contents"
        )
    others = [f for f in _ALL_FIELDS if f != field and len(getattr(contents, f))]
    if others:
        raise InferenceError(
            f"tensor '{name}': datatype {datatype} is carried in contents.{field}, received {others[0]}"
        )
    values = getattr(contents, field)
    expected = element_count(shape)
    if len(values) != expected:
        raise InferenceError(
            f"tensor '{name}': expected {expected} values in contents.{field} for shape {list(shape)}, "
            f"received {len(values)}"
        )
    try:
        arr = np.array(values, dtype=dtype)
    except (OverflowError, ValueError) as exc:
        raise InferenceError(f"tensor '{name}': a value does not fit {datatype}: {exc}") from None
    return arr.reshape(shape)


def decode_request(msg: Any) -> InferRequest:
    """A `ModelInferRequest` -> `InferRequest` (raw contents become read-only views, not copies)."""
    raw = msg.raw_input_contents
    if raw and len(raw) != len(msg.inputs):
        raise InferenceError(
            "raw_input_contents must hold one entry per input: "
            f"expected {len(msg.inputs)}, received {len(raw)}"
        )
    inputs: list[Tensor] = []
    for i, t in enumerate(msg.inputs):
        if not t.name:
            raise InferenceError(f"input {i}: 'name' must be a non-empty string")
        shape = _shape(t)
        if raw:
            if t.HasField("contents"):
                raise InferenceError(
                    f"tensor '{t.name}': give data in raw_input_contents or contents, not both"
                )
            data = array_from_bytes(t.name, t.datatype, shape, raw[i])
        elif t.HasField("contents"):
            data = _from_contents(t.name, t.datatype, shape, t.contents)
        else:
            raise InferenceError(f"tensor '{t.name}': no data (neither contents nor raw_input_contents)")
        inputs.append(Tensor(t.name, t.datatype, shape, data, parameters_from_proto(t.parameters)))
    outputs = [RequestedOutput(o.name, parameters_from_proto(o.parameters)) for o in msg.outputs] or None
    if outputs is not None:
        for o in outputs:
            if not o.name:
                raise InferenceError("requested output: 'name' must be a non-empty string")
    return InferRequest(
        inputs=inputs,
        outputs=outputs,
        id=msg.id or None,
        parameters=parameters_from_proto(msg.parameters),
    )


def _raw_bytes(data: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(data)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr.tobytes()


def encode_response(response: InferResponse, raw: bool) -> Any:
    """`InferResponse` -> `ModelInferResponse`; `raw`: put tensor data in raw_output_contents."""
    msg = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id or "",
    )
    parameters_to_proto(msg.parameters, response.parameters)
    raw = raw or any(t.datatype not in CONTENTS_FIELD for t in response.outputs)
    for t in response.outputs:
        out = msg.outputs.add(name=t.name, datatype=t.datatype, shape=list(t.shape))
        parameters_to_proto(out.parameters, t.parameters)
        if raw:
            msg.raw_output_contents.append(_raw_bytes(t.data))
        else:
            getattr(out.contents, CONTENTS_FIELD[t.datatype]).extend(t.data.ravel().tolist())
    return msg
