"""The gRPC front end: KServe V2's `inference.GRPCInferenceService` over the transport-neutral `DataPlane`.

It runs on grpc.aio in the server's asyncio event loop, beside the REST front end, and shares its data
plane, batcher and metrics. Each RPC decodes its message (`grpc_codec`), calls the data plane and encodes
the answer; a `TrtforgeError` becomes the gRPC status of `grpc_errors.grpc_status` with the error's
message (which names the tensor and the expected vs received value), anything else INTERNAL, and the
server keeps serving. `start_grpc` binds and starts it; `GrpcServer.stop(grace)` lets in-flight calls
finish (SIGTERM) before closing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from grpc import aio

from trtforge_runtime.errors import TrtforgeError
from trtforge_runtime.serve.dataplane import DataPlane
from trtforge_runtime.serve.grpc_codec import decode_request, encode_response
from trtforge_runtime.serve.grpc_errors import grpc_status
from trtforge_runtime.serve.grpc_gen import grpc_predict_v2_pb2 as pb
from trtforge_runtime.serve.grpc_gen import grpc_predict_v2_pb2_grpc as pb_grpc

log = logging.getLogger("trtforge.serve.grpc")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
PROTOCOL = "grpc"


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The six RPCs of the Open Inference Protocol, answered by a `DataPlane`."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    async def _fail(self, context: aio.ServicerContext, exc: BaseException, rpc: str) -> NoReturn:
        if isinstance(exc, TrtforgeError):
            code, message = grpc_status(exc), str(exc)
        else:
            log.exception("grpc %s failed", rpc)
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
        await context.abort(code, message)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    async def ServerLive(self, request: Any, context: aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def ServerReady(self, request: Any, context: aio.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def ModelReady(self, request: Any, context: aio.ServicerContext) -> Any:
        try:
            ready = self.dataplane.model_ready(request.name, request.version or None)
        except Exception as exc:
            await self._fail(context, exc, "ModelReady")
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: aio.ServicerContext) -> Any:
        meta = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=list(meta.get("extensions", []))
        )

    async def ModelMetadata(self, request: Any, context: aio.ServicerContext) -> Any:
        try:
            meta = self.dataplane.model_metadata(request.name, request.version or None)
        except Exception as exc:
            await self._fail(context, exc, "ModelMetadata")

        def tensors(items: list[dict[str, Any]]) -> list[Any]:
            return [
                pb.ModelMetadataResponse.TensorMetadata(
                    name=t["name"], datatype=t["datatype"], shape=[int(d) for d in t["shape"]]
                )
                for t in items
            ]

        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=[str(v) for v in meta.get("versions", [])],
            platform=meta.get("platform", ""),
            inputs=tensors(meta.get("inputs", [])),
            outputs=tensors(meta.get("outputs", [])),
        )

    async def ModelInfer(self, request: Any, context: aio.ServicerContext) -> Any:
        name = request.model_name
        try:
            try:
                decoded = decode_request(request)
            except TrtforgeError as exc:  # answered before the data plane: count it here
                known = name if name in self.dataplane.models else "<unknown>"
                self.dataplane.record(known, PROTOCOL, exc.http_status)
                raise
            response = await self.dataplane.infer(
                name, request.model_version or None, decoded, protocol=PROTOCOL
            )
            return encode_response(response, raw=len(request.raw_input_contents) > 0)
        except Exception as exc:
            await self._fail(context, exc, "ModelInfer")


@dataclass
class GrpcServer:
    """A started gRPC front end: the bound port and how to stop it."""

    server: aio.Server
    host: str
    port: int

    async def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, let in-flight ones finish within `grace` seconds, then close."""
        await self.server.stop(grace)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def start_grpc(
    dataplane: DataPlane,
    host: str = "0.0.0.0",
    port: int = 8081,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    reuse_port: bool = False,
) -> GrpcServer:
    """Bind `host:port` (0: any free port) and start serving; call from the server's event loop.

    `max_message_bytes` bounds request and response messages (the REST body limit's counterpart); a
    larger request is refused by gRPC with RESOURCE_EXHAUSTED before it reaches the data plane.
    """
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(dataplane), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise TrtforgeError(f"cannot bind the gRPC port {address}: {exc}") from None
    if bound == 0:
        raise TrtforgeError(f"cannot bind the gRPC port {address} (in use?)")
    await server.start()
    log.info("gRPC (KServe V2 GRPCInferenceService) listening on %s:%d", host, bound)
    return GrpcServer(server, host, bound)
