"""`trtforge local FILE [--workdir DIR] [--port N]`: the whole pipeline on this machine, no cluster.

The embedded default a newcomer runs first. Three stages on the same ModelDeployment the operator would
run, with the same code the Jobs and pods run:

  [1/3] train    WORKDIR/NAME/model    skipped when it already holds a model trained from the same
                                       spec.model (manifest.json) whose model.onnx still has its digest
  [2/3] convert  WORKDIR/NAME/engine   reused by convert itself when model and engine spec are unchanged;
                                       an engine folder from an older model is replaced
  [3/3] serve    http://HOST:PORT      until Ctrl-C / SIGTERM; prints the endpoint and a curl example

A spec importing a trained model (spec.model.source) has no train stage. The curl example posts a
held-out test row (WORKDIR/NAME/request.json) so the first prediction can be checked by eye.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from trtforge_runtime.artifacts import read_json, sha256_file
from trtforge_runtime.errors import ArtifactError
from trtforge_runtime.spec.load import load_manifest
from trtforge_runtime.spec.model import ModelDeployment

STAGES = 3


@dataclass(frozen=True)
class LocalOptions:
    file: Path
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int = 8081

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LocalOptions:
        return cls(
            file=Path(args.file),
            workdir=Path(args.workdir),
            host=str(getattr(args, "host", "127.0.0.1")),
            port=int(getattr(args, "port", 8080)),
            grpc_port=int(getattr(args, "grpc_port", 8081)),
        )


class Progress:
    """`[i/3] stage: message` lines on stdout (logs go to stderr)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def stage(self, index: int, name: str, message: str) -> None:
        print(f"[{index}/{STAGES}] {name}: {message}", file=self.stream, flush=True)

    def line(self, message: str) -> None:
        print(message, file=self.stream, flush=True)


def model_is_current(model_dir: Path, md: ModelDeployment, manifest_dir: Path | None = None) -> str | None:
    """The model's digest when MODEL_DIR holds a model trained from md's spec.model (and, for custom
    training code, from the same code: `manifest.json` codeDigest), intact; else None."""
    manifest_path = model_dir / "manifest.json"
    onnx_path = model_dir / "model.onnx"
    if not manifest_path.is_file() or not onnx_path.is_file():
        return None
    try:
        manifest = read_json(manifest_path, "model manifest")
    except ArtifactError:
        return None
    wanted = md.spec.model_dump(by_alias=True, mode="json", exclude_none=True).get("model")
    if (manifest.get("spec") or {}).get("model") != wanted:
        return None
    custom = md.spec.model.train.custom if md.spec.model.train is not None else None
    if custom is not None and custom.code:
        from trtforge_runtime.train.custom import local_code_digest

        code = local_code_digest(custom.code, manifest_dir or Path.cwd())
        if code is None or manifest.get("codeDigest") != code:
            return None
    digest = manifest.get("digest")
    return str(digest) if digest and sha256_file(onnx_path) == digest else None


def train_stage(
    options: LocalOptions, md: ModelDeployment, model_dir: Path, progress: Progress
) -> Path | None:
    """Train unless the model folder is current; returns the model folder (None for spec.model.source)."""
    source = md.spec.model.source
    if source is not None:
        progress.stage(1, "train", f"skipped: spec.model.source ({source.uri}) is used as is")
        return None
    digest = model_is_current(model_dir, md, options.file.resolve().parent)
    if digest is not None:
        progress.stage(1, "train", f"up to date, skipped ({model_dir}, {digest[:19]}...)")
        return model_dir
    train = md.spec.model.train
    assert train is not None  # exactly one of train/source (validated)
    data = train.dataset.uri if train.dataset is not None else "the custom code's own data"
    progress.stage(1, "train", f"{train.epochs} epochs on {data} -> {model_dir}")
    from trtforge_runtime.train.command import TrainOptions, train_to_folder

    started = time.perf_counter()
    outcome = train_to_folder(
        TrainOptions(file=options.file, output=model_dir, overwrite=True, progress="auto")
    )
    progress.stage(
        1,
        "train",
        f"{outcome.quality} in {time.perf_counter() - started:.1f} s; {outcome.digest[:19]}...",
    )
    return model_dir


def convert_stage(
    options: LocalOptions, md: ModelDeployment, model_dir: Path | None, engine_dir: Path, progress: Progress
) -> dict[str, Any]:
    from trtforge_runtime.convert.command import ConvertSettings, convert

    engine = md.spec.engine
    targets = (
        ""
        if engine.backend == "onnxruntime"
        else f" for compute capabilities {', '.join(engine.compute_capabilities)} + onnxruntime fallback"
    )
    progress.stage(2, "convert", f"{engine.backend} {engine.precision}{targets} -> {engine_dir}")
    settings = ConvertSettings(
        file=options.file,
        model=model_dir,
        output=engine_dir,
        cache=options.workdir / ".engine-cache",
        compute_capabilities=None,
    )
    started = time.perf_counter()
    try:
        outcome = convert(settings)
    except ArtifactError:
        # An engine folder of ours from an older model or engine spec: the workdir is trtforge's own.
        if not (engine_dir / "engine.json").is_file():
            raise
        progress.stage(2, "convert", f"replacing {engine_dir} (built from another model or engine spec)")
        shutil.rmtree(engine_dir)
        outcome = convert(settings)
    doc = outcome.document
    how = "up to date, reused" if outcome.reused_output else f"done in {time.perf_counter() - started:.1f} s"
    engines = ", ".join(f"{e['backend']} {e['computeCapability']}" for e in doc.get("engines", [])) or "none"
    progress.stage(2, "convert", f"{how}: precision {doc.get('precision')}, engines: {engines}")
    return doc


def expected_answer(task: str, y: Any) -> str:
    """What the answer to a held-out row with label `y` should show, in words, for the model's task."""
    import numpy as np

    value = np.asarray(y)
    if task == "regression":
        shown = ", ".join(f"{v:.4g}" for v in value.reshape(-1))
        return f"a held-out test row whose target is {shown}: the output should be close to it"
    if task == "multilabel":
        on = [int(i) for i in np.flatnonzero(value.reshape(-1))]
        return f"a held-out test row with labels {on}: exactly those outputs should be above 0.5"
    label = int(value)
    return f"a held-out test row whose label is {label}: the output's argmax should be {label}"


def write_example_request(
    md: ModelDeployment, doc: dict[str, Any], model_dir: Path | None, target: Path
) -> tuple[Path, str | None]:
    """A one-row V2 request: a held-out test row of every input (samples.npz), each in its input's
    datatype, with what the answer should show (expected_answer); else the reference sample's first row."""
    spec = (doc.get("model") or {}).get("inputs") or [{}]
    samples = model_dir / "samples.npz" if model_dir is not None else None
    held_out = _held_out_row(md, spec, samples) if samples is not None and samples.is_file() else None
    if held_out is not None:
        inputs, label = held_out
    else:  # the reference sample's first row of every input (a source model, or no test rows)
        reference = (doc.get("referenceSample") or {}).get("inputs") or {}
        if not reference:
            raise ArtifactError("no test rows and no referenceSample to build an example request from")
        inputs, label = [_first_row(n, t) for n, t in reference.items()], None
    body = {"id": "example-1", "inputs": inputs}
    target.write_text(json.dumps(body) + "\n")
    return target, label


def _held_out_row(
    md: ModelDeployment, spec: list[dict[str, Any]], samples: Path
) -> tuple[list[dict[str, Any]], str | None] | None:
    """The first held-out row of every input (x_test.<input>, or x_test for a model of one input) as V2
    request inputs in each input's datatype, and the hint from y_test; None when an input has no rows."""
    import numpy as np

    from trtforge_runtime.serve.types import DATATYPES

    with np.load(samples) as data:
        keys = set(data.files)
        inputs = []
        for item in spec:
            name = str(item.get("name", "input"))
            key = f"x_test.{name}" if f"x_test.{name}" in keys else "x_test"
            if key not in keys or (key == "x_test" and len(spec) != 1):
                return None
            datatype = str(item.get("datatype", "FP32"))
            row = data[key][:1].astype(DATATYPES.get(datatype, np.dtype(np.float32)))
            inputs.append(
                {
                    "name": name,
                    "shape": list(row.shape),
                    "datatype": datatype,
                    "data": row.reshape(-1).tolist(),
                }
            )
        label = expected_answer(str(md.spec.model.task), data["y_test"][0]) if "y_test" in keys else None
    return inputs, label


def _first_row(name: str, tensor: dict[str, Any]) -> dict[str, Any]:
    """The first row of a referenceSample tensor as a V2 request input (its own datatype)."""
    import numpy as np

    shape = [1, *tensor["shape"][1:]]
    width = int(np.prod(shape))
    return {"name": name, "shape": shape, "datatype": tensor["datatype"], "data": tensor["data"][:width]}


def serve_stage(
    options: LocalOptions,
    md: ModelDeployment,
    engine_dir: Path,
    request_file: Path,
    label: str | None,
    progress: Progress,
    on_ready: Callable[[Any], None] | None = None,
) -> int:
    from trtforge_runtime.serve.command import loop_factory
    from trtforge_runtime.serve.server import Server
    from trtforge_runtime.serve.settings import ServeSettings

    settings = ServeSettings.from_sources(
        None,
        manifest=options.file,
        engine_dir=engine_dir,
        host=options.host,
        port=options.port,
        grpc_port=options.grpc_port,
    )
    progress.stage(3, "serve", f"loading {engine_dir}")

    async def main() -> int:
        server = Server(settings)
        await server.start()
        server.install_signal_handlers()
        await server.wait_loaded()
        served = server.dataplane.models[server.name]
        if served.ready:
            host = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
            url = f"http://{host}:{server.port}"
            kind = server.loaded.selection.kind if server.loaded else "?"
            progress.stage(
                3, "serve", f"ready: model '{server.name}' on {kind} at {url}/v2/models/{server.name}"
            )
            if server.grpc_port:
                progress.line(f"      gRPC (KServe V2) on {host}:{server.grpc_port}")
            progress.line("try it (Ctrl-C stops the server):")
            progress.line(
                f"  curl -s -X POST {url}/v2/models/{server.name}/infer "
                f"-H 'Content-Type: application/json' -d @{request_file}"
            )
            if label is not None:
                progress.line(f"  ({label})")
            progress.line(f"  metrics: curl -s {url}/metrics | grep trtforge_")
            if on_ready is not None:
                on_ready(server)
        elif server.load_error is None:
            progress.stage(3, "serve", f"NOT READY: {served.reason}")
        await server.stopping.wait()
        await server.shutdown()
        progress.stage(3, "serve", "stopped")
        return server.load_error.exit_code if server.load_error is not None else 0

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main())


def run_local(
    options: LocalOptions,
    progress: Progress | None = None,
    on_ready: Callable[[Any], None] | None = None,
) -> int:
    progress = progress or Progress()
    md = load_manifest(options.file)
    name = md.metadata.name
    root = options.workdir / name
    root.mkdir(parents=True, exist_ok=True)
    model_dir = train_stage(options, md, root / "model", progress)
    engine_dir = root / "engine"
    doc = convert_stage(options, md, model_dir, engine_dir, progress)
    request_file, label = write_example_request(md, doc, model_dir, root / "request.json")
    return serve_stage(options, md, engine_dir, request_file.resolve(), label, progress, on_ready)


def run(args: argparse.Namespace) -> int:
    """Entry point of `trtforge local` (see cli.py); errors surface as TrtforgeError."""
    return run_local(LocalOptions.from_args(args))
