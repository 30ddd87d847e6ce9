"""A model with two inputs over the wire in gRPC: `trtforge convert` then `trtforge serve` (real CLI
processes, onnxruntime backend) asked by the unmodified `tritonclient.grpc` client in this process.

The server runs in its own process: tritonclient.grpc and trtforge's generated stubs register the same
`inference.*` protobuf symbols, and one process cannot hold both. The model is
tests/runtime/convert/multi_io.py's with two inputs, `image` FP32 [-1, 4, 4] and `site` INT64 [-1, 1]
(an embedding row), and two outputs; the answers are onnxruntime's on the ONNX file. A missing input, an
extra input, a wrong datatype and a wrong shape are INVALID_ARGUMENT naming the input, and the server
stays ready.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import tritonclient.grpc as tc
import yaml
from served_checks import assert_same, free_port, infer_grpc
from tritonclient.utils import InferenceServerException

NAME = "two-inputs"
INPUTS = ("image", "site")


def _multi_io() -> ModuleType:
    path = Path(__file__).parents[1] / "convert" / "multi_io.py"
    spec = importlib.util.spec_from_file_location("grpc_multi_io_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


multi_io = _multi_io()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trtforge_runtime.cli", *args]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("grpc-two-inputs")
    model = multi_io.build(root / "m.onnx", inputs=INPUTS)
    doc = {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": {"source": {"uri": str(model), "format": "onnx"}},
            "engine": {
                "backend": "onnxruntime",
                "precision": "fp32",
                "batch": {"min": 1, "opt": 8, "max": 16},
                "computeCapabilities": ["8.9"],
            },
        },
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(doc))
    convert = _cli(
        "convert", "-f", str(root / "spec.yaml"), "-o", str(root / "engine"), "--cache", str(root / "c")
    )
    done = subprocess.run(convert, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    port, grpc_port = free_port(), free_port()
    log_path = root / "serve.log"
    serve = _cli("serve", "--engine", str(root / "engine"), "--name", NAME, "--host", "127.0.0.1")
    serve += ["--port", str(port), "--grpc-port", str(grpc_port)]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            serve,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TRTFORGE_BACKEND": "onnxruntime", "PYTHONUNBUFFERED": "1"},
        )
    target = f"127.0.0.1:{grpc_port}"
    try:
        with tc.InferenceServerClient(target) as client:
            deadline = time.monotonic() + 60
            while not _ready(client, NAME):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"trtforge serve did not become ready:\n{log_path.read_text()}")
                time.sleep(0.2)
        yield target, model
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert code == 0, log_path.read_text()


def _ready(client: tc.InferenceServerClient, model: str) -> bool:
    try:
        return bool(client.is_model_ready(model))
    except InferenceServerException:
        return False


def test_metadata_lists_both_inputs_with_their_types(server: tuple[str, Path]) -> None:
    target, _ = server
    with tc.InferenceServerClient(target) as client:
        meta = client.get_model_metadata(NAME, as_json=True)
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("image", "FP32", ["-1", "4", "4"]),
        ("site", "INT64", ["-1", "1"]),
    ]
    assert [t["name"] for t in meta["outputs"]] == ["probabilities", "score"]


@pytest.mark.parametrize("rows", [1, 7, 16, 40])
def test_both_inputs_in_and_both_outputs_out(server: tuple[str, Path], rows: int) -> None:
    """40 rows: above the profile's max of 16, split by the batcher and answered whole."""
    target, model = server
    feeds = multi_io.feeds(rows, seed=rows, inputs=INPUTS)
    assert_same(infer_grpc(target, NAME, feeds), multi_io.reference(model, feeds), atol=1e-5)


def test_outputs_selects_one(server: tuple[str, Path]) -> None:
    target, model = server
    feeds = multi_io.feeds(5, seed=3, inputs=INPUTS)
    served = infer_grpc(target, NAME, feeds, ["score"])
    assert list(served) == ["score"]
    assert_same(served, {"score": multi_io.reference(model, feeds)["score"]}, atol=1e-5)


def _input(name: str, array: np.ndarray, datatype: str) -> tc.InferInput:
    inp = tc.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array)
    return inp


def _good() -> dict[str, np.ndarray]:
    return multi_io.feeds(2, seed=5, inputs=INPUTS)


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ([_input("image", _good()["image"], "FP32")], "missing input tensor(s) 'site'"),
        (
            [
                _input("image", _good()["image"], "FP32"),
                _input("site", _good()["site"], "INT64"),
                _input("extra", np.ones((2, 1), np.float32), "FP32"),
            ],
            "unknown input tensor 'extra'",
        ),
        (
            [
                _input("image", _good()["image"], "FP32"),
                _input("site", _good()["site"].astype(np.int32), "INT32"),
            ],
            "input tensor 'site': expected datatype INT64, received INT32",
        ),
        (
            [
                _input("image", _good()["image"].reshape(2, 16), "FP32"),
                _input("site", _good()["site"], "INT64"),
            ],
            "input tensor 'image': expected shape [-1, 4, 4], received [2, 16]",
        ),
    ],
    ids=["missing", "extra", "datatype", "shape"],
)
def test_bad_inputs_are_invalid_argument_naming_the_input(
    server: tuple[str, Path], inputs: list[tc.InferInput], fragment: str
) -> None:
    target, model = server
    with tc.InferenceServerClient(target) as client:
        with pytest.raises(InferenceServerException) as exc:
            client.infer(NAME, inputs)
        assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert fragment in (exc.value.message() or "")
        assert client.is_model_ready(NAME)  # a bad request costs nothing else
    feeds = _good()
    assert_same(infer_grpc(target, NAME, feeds), multi_io.reference(model, feeds), atol=1e-5)
