"""The `trtforge` command line: one parser for every subcommand, each implemented in its own package.

Parsing lives here so that `trtforge --help` works in every image; the heavy work is imported only when
its subcommand runs (the operator image has no TensorFlow, the server image no TensorFlow either).
A `TrtforgeError` is printed as one clear line (no traceback) and mapped to its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trtforge_runtime import __version__
from trtforge_runtime.errors import TrtforgeError
from trtforge_runtime.remote import path_or_uri

# subcommand -> "module:function" taking the parsed namespace and returning an exit code
COMMANDS = {
    "train": "trtforge_runtime.train.command:run",
    "convert": "trtforge_runtime.convert.command:run",
    "serve": "trtforge_runtime.serve.command:run",
    "local": "trtforge_runtime.local:run",
    "operator": "trtforge_operator.command:run",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trtforge",
        description="Train a Keras model, convert it to verified TensorRT engines, serve and autoscale it.",
    )
    parser.add_argument("--version", action="version", version=f"trtforge {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train the model of a ModelDeployment; write ONNX, SavedModel, metrics")
    p.add_argument("-f", "--file", required=True, type=Path, help="ModelDeployment manifest (YAML)")
    p.add_argument("-o", "--output", required=True, type=path_or_uri, help="output folder or URI (s3://...)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model in the output folder")
    p.add_argument(
        "--progress",
        choices=["auto", "bar", "lines", "none"],
        default="auto",
        help="progress display: a bar on a terminal, one line per epoch otherwise",
    )

    p = sub.add_parser("convert", help="build verified engines from a trained model")
    p.add_argument("-f", "--file", required=True, type=Path, help="ModelDeployment manifest (YAML)")
    p.add_argument(
        "--model",
        type=path_or_uri,
        default=None,
        help="a `trtforge train` output folder or URI (default: spec.model.source)",
    )
    p.add_argument("-o", "--output", required=True, type=path_or_uri, help="engine output folder or URI")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="engine cache folder (default: OUTPUT/../.engine-cache or $TRTFORGE_ENGINE_CACHE)",
    )
    p.add_argument(
        "--compute-capability",
        action="append",
        default=None,
        help="build only these of spec.engine.computeCapabilities (repeatable; a Job per GPU)",
    )

    p = sub.add_parser("serve", help="serve an engine folder over the Open Inference Protocol (V2)")
    p.add_argument(
        "--engine", required=True, type=path_or_uri, help="a `trtforge convert` output folder or URI"
    )
    p.add_argument("--name", default=None, help="model name in the V2 API (default: from engine.json)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080, help="REST port (V2 and /metrics)")
    p.add_argument("--grpc-port", type=int, default=8081, help="gRPC port (0 disables gRPC)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing the ports, one model copy each "
        "(default: $TRTFORGE_WORKERS, else the container's CPU limit in whole cores)",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "tensorrt", "tensorrt-rtx", "onnxruntime"],
        default="auto",
        help="force a backend (default: the engine built for this GPU, else onnxruntime)",
    )
    p.add_argument(
        "-f",
        "--file",
        type=Path,
        default=None,
        help="ModelDeployment manifest for batching/timeout settings (optional)",
    )

    p = sub.add_parser("local", help="train, convert and serve a ModelDeployment on this machine")
    p.add_argument("file", type=Path, help="ModelDeployment manifest (YAML)")
    p.add_argument("--workdir", type=Path, default=Path(".trtforge"), help="where artifacts go")
    p.add_argument("--port", type=int, default=8080, help="REST port")
    p.add_argument("--grpc-port", type=int, default=8081, help="gRPC port (0 disables gRPC)")
    p.add_argument("--host", default="127.0.0.1")

    p = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    p.add_argument("kopf_args", nargs=argparse.REMAINDER, help="extra `kopf run` options")
    return parser


def _resolve(target: str) -> Any:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # `trtforge operator --verbose ...`: leading options belong to kopf
        if args.command != "operator":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.kopf_args = [*unknown, *args.kopf_args]
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = _resolve(COMMANDS[args.command])(args)
    except TrtforgeError as exc:
        print(f"trtforge {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"trtforge {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
