"""The binary tensor data extension of the V2 REST protocol (as Triton's and KServe's clients send it).

A request body may be a JSON header of `Inference-Header-Content-Length` bytes followed by the raw
little-endian bytes of the inputs whose `parameters.binary_data_size` say so, in input order. Outputs
come back the same way when an output asks for `binary_data: true` or the request sets
`binary_data_output: true`; the response then carries `Inference-Header-Content-Length` too. Without the
header a body is plain JSON. This module frames bodies; `codec_json` interprets the JSON part.
"""

from __future__ import annotations

from trtforge_runtime.errors import InferenceError
from trtforge_runtime.serve import codec_json
from trtforge_runtime.serve.types import InferRequest, InferResponse

HEADER = "inference-header-content-length"


def parse_header_length(value: str | bytes | None, body_length: int) -> int | None:
    """The JSON header's length from the Inference-Header-Content-Length value (None when absent)."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    try:
        length = int(text.strip())
    except ValueError:
        raise InferenceError(f"Inference-Header-Content-Length is not an integer: {text!r}") from None
    if not 0 < length <= body_length:
        raise InferenceError(
            f"Inference-Header-Content-Length is {length} but the request body has {body_length} bytes"
        )
    return length


def decode_request(body: bytes, header_length: int | None) -> InferRequest:
    """Decode a V2 REST request body, with or without the binary tensor data extension."""
    if header_length is None:
        return codec_json.decode_request(body)
    view = memoryview(body)
    doc = codec_json.loads(view[:header_length], "the JSON header of the request")
    return codec_json.request_from_document(doc, view[header_length:])


def encode_response(response: InferResponse, request: InferRequest) -> tuple[bytes, int | None]:
    """Response body and, when outputs are binary, the JSON header length for the response header."""
    binary = codec_json.binary_output_names(request)
    doc, chunks = codec_json.response_document(response, binary)
    header = codec_json.dumps(doc)
    if not chunks:
        return header, None
    return b"".join([header, *(c.tobytes() for c in chunks)]), len(header)
