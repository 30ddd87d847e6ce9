"""Transport-neutral inference requests and responses of the Open Inference Protocol (KServe V2).

REST (JSON and the binary tensor extension) and gRPC decode into these types and encode from them, so the
data plane, batcher and backends never see a wire format. Tensors are numpy arrays (views on the request
bytes where possible, never Python lists); V2 datatype names map to numpy dtypes here, and the helpers
that turn raw bytes or flat JSON lists into arrays check byte lengths and element counts and raise an
`InferenceError` that names the tensor and the expected vs received value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtforge_runtime.errors import InferenceError

# V2 datatype -> numpy dtype (little-endian, as the protocol's raw/binary encodings are)
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_BY_DTYPE: dict[np.dtype[Any], str] = {dt: name for name, dt in DATATYPES.items()}

Parameters = dict[str, Any]


def dtype_of(datatype: str, tensor: str = "") -> np.dtype[Any]:
    """numpy dtype of a V2 datatype name; InferenceError for an unknown or unsupported one."""
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        where = f"tensor '{tensor}': " if tensor else ""
        raise InferenceError(
            f"{where}unsupported datatype {datatype!r} (supported: {', '.join(DATATYPES)})"
        ) from None


def datatype_of(dtype: np.dtype[Any] | type) -> str:
    """V2 datatype name of a numpy dtype (byte order ignored)."""
    dt = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).byteorder == ">" else np.dtype(dtype)
    try:
        return _BY_DTYPE[dt]
    except KeyError:
        raise InferenceError(f"numpy dtype {dt} has no V2 datatype") from None


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """Validate a request's `shape` field: a list of non-negative integers."""
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InferenceError(f"tensor '{name}': shape must be a list of non-negative integers, got {shape!r}")
    if len(shape) > 16:
        raise InferenceError(f"tensor '{name}': shape has {len(shape)} dimensions, at most 16 are supported")
    return tuple(shape)


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def array_from_bytes(name: str, datatype: str, shape: Sequence[int], buf: bytes | memoryview) -> np.ndarray:
    """A read-only numpy view on raw little-endian tensor bytes (binary extension, gRPC raw contents)."""
    dtype = dtype_of(datatype, name)
    expected = element_count(shape) * dtype.itemsize
    if len(buf) != expected:
        raise InferenceError(
            f"tensor '{name}': expected {expected} bytes for shape {list(shape)} of {datatype}, "
            f"received {len(buf)} bytes"
        )
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def array_from_list(name: str, datatype: str, shape: Sequence[int], data: Any) -> np.ndarray:
    """Numpy array from a JSON `data` field (flat or nested lists, row-major), count-checked."""
    dtype = dtype_of(datatype, name)
    expected = element_count(shape)
    if not isinstance(data, list):
        data = [data]
    try:
        arr = np.array(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InferenceError(f"tensor '{name}': data is not a list of {datatype} values: {exc}") from None
    if arr.size != expected:
        raise InferenceError(
            f"tensor '{name}': expected {expected} values for shape {list(shape)}, received {arr.size}"
        )
    if datatype == "BOOL" and arr.size:
        _check_bool_list(name, data)
    elif dtype.kind in "iu" and arr.size:
        _check_integer_list(name, data, dtype)
    return arr.reshape(shape)


def _flat_first(data: list[Any]) -> Any:
    while isinstance(data, list) and data:
        data = data[0]
    return data


def _check_bool_list(name: str, data: list[Any]) -> None:
    first = _flat_first(data)
    if not isinstance(first, bool):
        raise InferenceError(f"tensor '{name}': BOOL data must be true/false, received {first!r}")


def _check_integer_list(name: str, data: list[Any], dtype: np.dtype[Any]) -> None:
    # np.array(..., dtype=int) silently truncates floats; refuse them (checked on the first element
    # for speed, plus a full check through a float round trip that catches 1.5 anywhere).
    first = _flat_first(data)
    if isinstance(first, float | str):
        raise InferenceError(f"tensor '{name}': {datatype_of(dtype)} data must be integers, got {first!r}")
    probe = np.array(data, dtype=np.float64)
    if not np.all(np.isfinite(probe)) or not np.array_equal(probe, np.trunc(probe)):
        raise InferenceError(f"tensor '{name}': {datatype_of(dtype)} data must be integers")


@dataclass(slots=True)
class Tensor:
    """A named tensor of a request or response. `data` has exactly `shape` and `datatype`'s dtype."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: Parameters = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, data: np.ndarray, parameters: Parameters | None = None) -> Tensor:
        return cls(name, datatype_of(data.dtype), tuple(int(d) for d in data.shape), data, parameters or {})


@dataclass(slots=True)
class RequestedOutput:
    """An entry of the request's `outputs`: which output to return and how (e.g. binary_data)."""

    name: str
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class InferRequest:
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None = None  # None: every output of the model
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class InferResponse:
    model_name: str
    model_version: str | None
    outputs: list[Tensor]
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output as metadata declares it (-1 = dynamic dimension).

    `min_shape`/`max_shape`: the engine's optimization profile of an input whose dimensions after the
    batch may vary (engine.json `model.inputs[].profile`); requests outside it are refused.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    min_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TensorSpec:
        profile = doc.get("profile") or {}
        lo, hi = profile.get("min"), profile.get("max")
        return cls(
            str(doc["name"]),
            str(doc["datatype"]),
            tuple(int(d) for d in doc["shape"]),
            None if lo is None else tuple(int(d) for d in lo),
            None if hi is None else tuple(int(d) for d in hi),
        )


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """V2 model metadata of a served model."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": list(self.versions),
            "platform": self.platform,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }
