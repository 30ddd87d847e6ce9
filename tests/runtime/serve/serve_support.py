"""Helpers of the serving tests: a small real engine folder and a real server on a free port, in this
process (`serve`) or as the `trtforge serve` CLI process (`serve_process`), and `convert_onnx`, the
`trtforge convert` of an ONNX file that the tests serving a converted model start from.

The engine folder is what `trtforge convert` writes (docs/artifacts.md) for a digits-shaped MLP
(64 -> 32 relu -> 10 softmax, dynamic batch), built with onnx.helper so the tests do not depend on
training or conversion; its referenceSample comes from onnxruntime like convert's does.
(A module of its own name: `conftest` resolves to tests/conftest.py under pythonpath=["tests"].)
"""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from served_checks import free_port
from trtforge_runtime import cli
from trtforge_runtime.serve.server import Server
from trtforge_runtime.serve.settings import ServeSettings

INPUT = "pixels"
OUTPUT = "probabilities"


def build_onnx(path: Path, seed: int = 0, hidden: int = 32) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (64, hidden)).astype(np.float32)
    b1 = rng.normal(0, 0.1, hidden).astype(np.float32)
    w2 = rng.normal(0, 0.3, (hidden, 10)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 10).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", [INPUT, "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["l0"]),
        helper.make_node("Add", ["l0", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 10])],
        initializer=[
            numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="trtforge-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def reference_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run([OUTPUT], {INPUT: x})[0]
    return out


def make_engine_dir(root: Path, name: str = "digits", batch_max: int = 256) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    onnx_path = root / "onnxruntime" / "model.onnx"
    build_onnx(onnx_path)
    x = np.random.default_rng(1).uniform(0, 1, (4, 64)).astype(np.float32)
    y = reference_outputs(onnx_path, x)
    doc: dict[str, Any] = {
        "format": "trtforge.engine/v1",
        "name": name,
        "model": {
            "digest": "sha256:" + "0" * 64,
            "inputs": [{"name": INPUT, "shape": [-1, 64], "datatype": "FP32"}],
            "outputs": [{"name": OUTPUT, "shape": [-1, 10], "datatype": "FP32"}],
        },
        "backend": "tensorrt-rtx",
        "precision": "fp32",
        "batch": {"min": 1, "opt": 32, "max": batch_max},
        "engines": [
            {
                "backend": "tensorrt-rtx",
                "computeCapability": "8.9",
                "file": "engines/tensorrt-rtx-sm89.engine",
                "sizeBytes": 4,
                "buildSeconds": 0.1,
                "libraryVersion": "1.7.1.116",
            }
        ],
        "onnxruntime": {"file": "onnxruntime/model.onnx", "precision": "fp32", "libraryVersion": "1.32.0"},
        "referenceSample": {
            "inputs": {INPUT: {"shape": [4, 64], "datatype": "FP32", "data": x.reshape(-1).tolist()}},
            "outputs": {OUTPUT: {"shape": [4, 10], "datatype": "FP32", "data": y.reshape(-1).tolist()}},
            "atol": 1e-4,
            "top1": y.argmax(axis=1).tolist(),
        },
        "createdAt": "2026-01-01T00:00:00Z",
        "versions": {},
    }
    (root / "engines").mkdir(exist_ok=True)
    (root / "engines" / "tensorrt-rtx-sm89.engine").write_bytes(b"not a real engine")
    (root / "engine.json").write_text(json.dumps(doc))
    return root


def corrupt_reference(engine_dir: Path) -> None:
    doc = json.loads((engine_dir / "engine.json").read_text())
    ref = copy.deepcopy(doc["referenceSample"])
    data = np.array(ref["outputs"][OUTPUT]["data"]).reshape(4, 10)
    ref["outputs"][OUTPUT]["data"] = np.roll(data, 1, axis=1).reshape(-1).tolist()
    ref["top1"] = np.roll(data, 1, axis=1).argmax(axis=1).tolist()
    doc["referenceSample"] = ref
    (engine_dir / "engine.json").write_text(json.dumps(doc))


class ServerThread:
    """A real `Server` on 127.0.0.1:<free port> in its own thread and event loop."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.server: Server | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # surfaced in start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.server = Server(self.settings)
        await self.server.start()
        await self.server.wait_loaded()

    def start(self) -> ServerThread:
        self.thread.start()
        self._started.wait(60)
        if self._error is not None:
            raise self._error
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def serve(engine: Path, **overrides: Any) -> ServerThread:
    settings = ServeSettings(
        engine_dir=engine,
        host="127.0.0.1",
        port=0,
        grpc_port=overrides.pop("grpc_port", 0),
        **overrides,
    )
    return ServerThread(settings).start()


def convert_onnx(model: Path, name: str, **engine: Any) -> Path:
    """`trtforge convert` (in this process) of the ONNX file `model` for the onnxruntime backend into the
    folder `engine` beside it, the ModelDeployment named `name`; `engine` sets spec.engine fields over
    these defaults (batch 1/8/16). Returns the engine folder."""
    root = model.parent
    doc = {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"source": {"uri": str(model), "format": "onnx"}},
            "engine": {
                "backend": "onnxruntime",
                "precision": "fp32",
                "batch": {"min": 1, "opt": 8, "max": 16},
                "computeCapabilities": ["8.9"],
                **engine,
            },
        },
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(doc))
    argv = ["convert", "-f", str(root / "spec.yaml"), "-o", str(root / "engine"), "--cache", str(root / "c")]
    assert cli.main(argv) == 0
    return root / "engine"


@dataclass(frozen=True)
class ServeProcess:
    """A running `trtforge serve`: its REST and gRPC `host:port`, its log (stdout and stderr), the process."""

    rest: str
    grpc: str
    log: Path
    proc: subprocess.Popen[bytes]


def rest_request(
    rest: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """(status, body) of one HTTP request to `rest` (host:port)."""
    host, port = rest.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body, headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def rest_get(rest: str, path: str) -> tuple[int, bytes]:
    """(status, body) of GET `path` at `rest` (host:port); (0, b"") when nothing answers."""
    try:
        return rest_request(rest, "GET", path)
    except OSError:
        return 0, b""


def rest_infer(rest: str, model: str, body: Any) -> tuple[int, bytes]:
    """(status, body) of a V2 JSON infer request (`body`, a JSON document) for `model` at `rest`."""
    headers = {"Content-Type": "application/json"}
    return rest_request(rest, "POST", f"/v2/models/{model}/infer", json.dumps(body).encode(), headers)


@contextmanager
def serve_process(
    engine: Path, *, name: str | None = None, workers: int | None = None
) -> Iterator[ServeProcess]:
    """`trtforge serve --engine ENGINE` (the CLI in its own process, onnxruntime backend) with REST and
    gRPC on free ports, yielded once /v2/health/ready answers 200 (the gRPC port listens before that);
    `name`: --name, `workers`: TRTFORGE_WORKERS. On exit it gets SIGTERM and must exit 0. Its log is
    serve.log beside the engine folder; a failed or late start raises with it."""
    port, grpc_port = free_port(), free_port()
    log = engine.parent / "serve.log"
    argv = [sys.executable, "-m", "trtforge_runtime.cli", "serve", "--engine", str(engine)]
    argv += ["--name", name] if name else []
    argv += ["--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)]
    env = {**os.environ, "TRTFORGE_BACKEND": "onnxruntime", "PYTHONUNBUFFERED": "1"}
    if workers is not None:
        env["TRTFORGE_WORKERS"] = str(workers)
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    served = ServeProcess(f"127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", log, proc)
    try:
        deadline = time.monotonic() + 60
        while rest_get(served.rest, "/v2/health/ready")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"trtforge serve did not become ready:\n{log.read_text()}")
            time.sleep(0.2)
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert code == 0, log.read_text()
