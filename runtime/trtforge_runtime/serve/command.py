"""`trtforge serve --engine DIR2 [--name NAME] [--port 8080] [--grpc-port 8081]`: the CLI entry point.

Reads the settings (flags > TRTFORGE_* env > `-f` manifest > defaults), optionally switches logs to one
JSON object per line (`TRTFORGE_LOG_FORMAT=json`, for log pipelines in the cluster) and runs the server on
uvloop when it is installed (it is in the `serve` extra), plain asyncio otherwise; with more than one
worker (`--workers`, default: the container's CPU limit) in that many processes (`workers`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from trtforge_runtime.serve.settings import ServeSettings


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(fmt: str) -> None:
    if fmt == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def localize_engine(args: argparse.Namespace) -> argparse.Namespace:
    """A remote --engine URI (s3://...) downloaded (and size-checked) into the local cache folder."""
    from trtforge_runtime.remote import fetch_engine, is_remote

    if not is_remote(getattr(args, "engine", None)):
        return args
    return argparse.Namespace(**{**vars(args), "engine": fetch_engine(args.engine)})


def run(args: argparse.Namespace) -> int:
    settings = ServeSettings.from_sources(localize_engine(args))
    configure_logging(settings.log_format)
    from trtforge_runtime.serve.workers import default_workers, run_workers

    workers = settings.workers or default_workers()
    if workers > 1:
        from trtforge_runtime.serve.app import read_engine_doc

        read_engine_doc(settings.engine_dir)  # a missing or malformed folder fails once, here
        return run_workers(settings, workers)
    from trtforge_runtime.serve.server import Server

    async def main() -> int:
        server = Server(settings)
        return await server.run()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main())
