"""trtforge's data plane, batcher and codecs behind uvicorn's httptools protocol instead of our own.

The HTTP-layer comparison of benchmarks/serving_bench.py (`trtforge-uvicorn`): the same `RestApp` routes,
`DataPlane`, `Batcher` and onnxruntime backend as `trtforge serve`, as a raw ASGI callable (no framework),
run by uvicorn with `--http httptools --loop uvloop` and no access log. Only the HTTP/1.1 layer differs.

    PYTHONPATH=runtime python benchmarks/apps/trtforge_asgi.py --engine DIR --port 8080
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvicorn
from trtforge_runtime.serve.app import ModelPlane
from trtforge_runtime.serve.rest import RestApp
from trtforge_runtime.serve.settings import ServeSettings

HEADER_LENGTH = b"inference-header-content-length"


class App:
    def __init__(self, settings: ServeSettings) -> None:
        self.plane = ModelPlane.build(settings)  # the same data plane as `trtforge serve`'s Server
        self.rest = RestApp(self.plane.dataplane, max_body_bytes=settings.max_body_bytes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.plane.load()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        answer = self.rest.route(scope["method"].encode(), path)
        if answer is None:
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            length = next((v for k, v in scope["headers"] if k == HEADER_LENGTH), None)
            answer = await self.rest.infer(path, body, length)
        headers = [(b"content-type", answer.content_type), (b"content-length", b"%d" % len(answer.body))]
        if answer.headers:
            headers += answer.headers
        await send({"type": "http.response.start", "status": answer.code, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--engine", type=Path, required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    args = p.parse_args()
    settings = ServeSettings(
        engine_dir=args.engine,
        name=args.name,
        host=args.host,
        port=args.port,
        grpc_port=0,
        backend="onnxruntime",
    )
    uvicorn.run(
        App(settings),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
