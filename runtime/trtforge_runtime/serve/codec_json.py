"""V2 JSON request/response documents <-> `types`, with orjson and numpy (no per-element Python work).

A request document is checked field by field so that any malformed body becomes an `InferenceError`
(400) naming the offending field, never a 500. Tensor data may arrive inline as JSON (`data`) or, with the
binary tensor data extension, as `parameters.binary_data_size` bytes of the body after the JSON header;
`request_from_document` takes those bytes as a memoryview and builds zero-copy numpy views on them.
Responses serialize numpy arrays directly (orjson's OPT_SERIALIZE_NUMPY), flattened row-major.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from trtforge_runtime.errors import InferenceError
from trtforge_runtime.serve.types import (
    InferRequest,
    InferResponse,
    RequestedOutput,
    Tensor,
    array_from_bytes,
    array_from_list,
    check_shape,
)

DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes | memoryview, what: str = "request body") -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InferenceError(f"malformed JSON in {what}: {exc}") from None


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _parameters(doc: dict[str, Any], where: str) -> dict[str, Any]:
    params = doc.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InferenceError(f"{where}: 'parameters' must be an object")
    return params


def _name(doc: Any, where: str) -> str:
    if not isinstance(doc, dict):
        raise InferenceError(f"{where} must be an object")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise InferenceError(f"{where}: 'name' must be a non-empty string")
    return name


def request_from_document(doc: Any, binary: memoryview | None = None) -> InferRequest:
    """Build an InferRequest from a parsed V2 JSON document (+ the binary section, if any)."""
    if not isinstance(doc, dict):
        raise InferenceError("the inference request must be a JSON object")
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise InferenceError("the inference request needs a non-empty 'inputs' list")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InferenceError("'id' must be a string")
    params = _parameters(doc, "request")
    offset = 0
    inputs: list[Tensor] = []
    for i, item in enumerate(inputs_doc):
        name = _name(item, f"inputs[{i}]")
        datatype = item.get("datatype")
        if not isinstance(datatype, str):
            raise InferenceError(f"input tensor '{name}': 'datatype' must be a string")
        shape = check_shape(name, item.get("shape"))
        tparams = _parameters(item, f"input tensor '{name}'")
        size = tparams.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InferenceError(
                    f"input tensor '{name}': binary_data_size must be a non-negative integer"
                )
            if "data" in item:
                raise InferenceError(f"input tensor '{name}': has both 'data' and binary_data_size")
            if binary is None:
                raise InferenceError(
                    f"input tensor '{name}': binary_data_size is set but the request has no binary data "
                    "(no Inference-Header-Content-Length header)"
                )
            available = len(binary) - offset
            if size > available:
                raise InferenceError(
                    f"input tensor '{name}': binary_data_size is {size} bytes but only {available} bytes "
                    "of binary data remain in the request body"
                )
            data = array_from_bytes(name, datatype, shape, binary[offset : offset + size])
            offset += size
        else:
            if "data" not in item:
                raise InferenceError(f"input tensor '{name}': no 'data' and no binary_data_size parameter")
            data = array_from_list(name, datatype, shape, item["data"])
        inputs.append(Tensor(name, datatype, shape, data, tparams))
    if binary is not None and offset != len(binary):
        raise InferenceError(
            f"the request body holds {len(binary)} bytes of binary tensor data but the inputs' "
            f"binary_data_size parameters add up to {offset}"
        )
    outputs: list[RequestedOutput] | None = None
    outputs_doc = doc.get("outputs")
    if outputs_doc is not None:
        if not isinstance(outputs_doc, list):
            raise InferenceError("'outputs' must be a list")
        outputs = []
        for i, item in enumerate(outputs_doc):
            name = _name(item, f"outputs[{i}]")
            outputs.append(RequestedOutput(name, _parameters(item, f"output '{name}'")))
    return InferRequest(inputs=inputs, outputs=outputs, id=request_id, parameters=params)


def decode_request(body: bytes | memoryview) -> InferRequest:
    """A pure-JSON V2 inference request."""
    return request_from_document(loads(body))


def binary_output_names(request: InferRequest) -> set[str]:
    """Outputs to return as binary: per-output `binary_data`, else the request's `binary_data_output`."""
    default = bool(request.parameters.get("binary_data_output", False))
    names = set()
    if request.outputs:
        for out in request.outputs:
            if bool(out.parameters.get("binary_data", default)):
                names.add(out.name)
    elif default:
        names.add("*")
    return names


def response_document(
    response: InferResponse, binary: set[str] | None = None
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The JSON document of a response and, in order, the arrays whose bytes follow it (binary outputs)."""
    outputs = []
    chunks: list[np.ndarray] = []
    everything = binary is not None and "*" in binary
    for t in response.outputs:
        arr = np.ascontiguousarray(t.data)
        out: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        if binary and (everything or t.name in binary):
            out["parameters"] = {"binary_data_size": arr.nbytes}
            chunks.append(arr)
        else:
            out["data"] = arr.reshape(-1)
        outputs.append(out)
    doc: dict[str, Any] = {"model_name": response.model_name, "outputs": outputs}
    if response.model_version is not None:
        doc["model_version"] = response.model_version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    return doc, chunks


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=DUMP_OPTIONS)
