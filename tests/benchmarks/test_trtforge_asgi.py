"""benchmarks/apps/trtforge_asgi.py (serving_bench's `trtforge-uvicorn`): the ASGI app built on the same
`ModelPlane` as `trtforge serve` answers as that server does: 503 until its lifespan start-up loaded the
model, then the model's outputs, metadata and 404s. Driven through the ASGI interface directly (uvicorn
only carries bytes to it)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from trtforge_runtime.errors import ArtifactError
from trtforge_runtime.serve.settings import ServeSettings

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


asgi = _load("trtforge_asgi_app", REPO / "benchmarks" / "apps" / "trtforge_asgi.py")
support = _load("trtforge_asgi_serve_support", REPO / "tests" / "runtime" / "serve" / "serve_support.py")


async def _call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {"type": "http", "method": method, "path": path, "headers": []}
    received = iter([{"type": "http.request", "body": body, "more_body": False}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(received)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, answer = sent
    return start["status"], dict(start["headers"]), answer["body"]


async def _lifespan_startup(app: Any) -> None:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_the_asgi_app_serves_the_model_like_trtforge_serve(tmp_path: Path) -> None:
    engine = support.make_engine_dir(tmp_path / "engine")
    settings = ServeSettings(engine_dir=engine, name=None, port=0, grpc_port=0, backend="onnxruntime")
    app = asgi.App(settings)
    x = np.random.default_rng(3).uniform(0, 1, (3, 64)).astype(np.float32)
    request = json.dumps(
        {"inputs": [{"name": "pixels", "shape": [3, 64], "datatype": "FP32", "data": x.ravel().tolist()}]}
    ).encode()

    async def scenario() -> None:
        # before start-up: the model is registered but not loaded (the name comes from engine.json)
        code, _, body = await _call(app, "POST", "/v2/models/digits/infer", request)
        assert code == 503 and b"model 'digits' is not ready: loading" in body, body
        assert (await _call(app, "GET", "/v2/models/digits/ready"))[0] == 503
        await _lifespan_startup(app)
        assert (await _call(app, "GET", "/v2/models/digits/ready"))[0] == 200
        code, headers, body = await _call(app, "POST", "/v2/models/digits/infer", request)
        assert code == 200 and headers[b"content-type"].startswith(b"application/json"), body
        (output,) = json.loads(body)["outputs"]
        got = np.array(output["data"], np.float32).reshape(output["shape"])
        want = support.reference_outputs(engine / "onnxruntime" / "model.onnx", x)
        np.testing.assert_allclose(got, want, atol=1e-5)
        meta = json.loads((await _call(app, "GET", "/v2/models/digits"))[2])
        assert meta["platform"] == "onnxruntime_onnx" and meta["inputs"][0]["name"] == "pixels"
        assert (await _call(app, "GET", "/v2/models/nope"))[0] == 404

    asyncio.run(scenario())


def test_the_name_setting_renames_the_served_model(tmp_path: Path) -> None:
    engine = support.make_engine_dir(tmp_path / "engine")
    app = asgi.App(ServeSettings(engine_dir=engine, name="mnist", port=0, grpc_port=0, backend="onnxruntime"))
    assert list(app.plane.dataplane.models) == ["mnist"]
    request = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}
    code, _, body = asyncio.run(_call(app, "POST", "/v2/models/mnist/infer", json.dumps(request).encode()))
    assert code == 503 and b"model 'mnist' is not ready: loading" in body, body


@pytest.mark.parametrize("missing", ["engine.json", "folder"])
def test_a_bad_engine_folder_is_refused_at_construction(tmp_path: Path, missing: str) -> None:
    engine = support.make_engine_dir(tmp_path / "engine")
    if missing == "folder":
        engine = tmp_path / "nowhere"
    else:
        (engine / "engine.json").unlink()
    with pytest.raises(
        ArtifactError, match="engine folder not found" if missing == "folder" else "engine.json"
    ):
        asgi.App(ServeSettings(engine_dir=engine, port=0, grpc_port=0, backend="onnxruntime"))
