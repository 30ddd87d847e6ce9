"""The one mapping from trtforge errors to gRPC status codes (the REST side uses `http_status`).

Looked up along the exception's class hierarchy, so a new `InferenceError` subclass answers
INVALID_ARGUMENT until it is listed here. Codes follow what Triton and KServe clients expect: a bad tensor
is INVALID_ARGUMENT, an unknown model NOT_FOUND, a full queue or a not-ready model UNAVAILABLE (clients
may retry), a request timeout DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import grpc

from trtforge_runtime import errors

_CODES: dict[type[BaseException], grpc.StatusCode] = {
    errors.ModelNotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.PayloadTooLargeError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.OverloadedError: grpc.StatusCode.UNAVAILABLE,
    errors.NotReadyError: grpc.StatusCode.UNAVAILABLE,
    errors.RequestTimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.BackendError: grpc.StatusCode.INTERNAL,
    errors.InferenceError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.LibraryMissingError: grpc.StatusCode.UNAVAILABLE,
    errors.TrtforgeError: grpc.StatusCode.INTERNAL,
}


def grpc_status(exc: BaseException) -> grpc.StatusCode:
    """gRPC status code for an exception (INTERNAL for anything that is not a known trtforge error)."""
    for cls in type(exc).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL
