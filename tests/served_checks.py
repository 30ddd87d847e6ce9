"""Serve a model, ask it over the wire, compare with the framework's own answer: shared by the example
tests (`trtforge local`, tests/examples/), the operator on the cluster in a box (tests/cluster_box/) and
on a real cluster (tests/e2e/).

- `start_local` / `stop`: `trtforge local MANIFEST` in a subprocess, until it serves;
- `infer_http`: one V2 JSON request (the wire format a curl user sends) with every input, returning every
  output (or the `outputs` asked for) by name, in the datatype the server says;
- `infer_grpc`: the same over gRPC with the unmodified `tritonclient.grpc` (in a process that has not
  imported trtforge's own gRPC stubs: both register the same `inference.*` protobuf symbols);
- `tensorflow_outputs` / `onnxruntime_outputs`: the trained or imported model's own answer;
- `assert_same`: served against reference, output by output: integer and BOOL outputs (classes) equal,
  float outputs within a tolerance.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# V2 datatype <-> numpy (the ones the examples' models take and give)
DATATYPES = {
    "FP32": np.float32,
    "FP16": np.float16,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}
# float outputs of an engine against the fp32 framework, per engine precision
ATOL = {"fp32": 1e-4, "fp16": 0.01, "int8": 0.05}


def datatype(array: np.ndarray) -> str:
    for name, dtype in DATATYPES.items():
        if array.dtype == np.dtype(dtype):
            return name
    raise ValueError(f"no V2 datatype for {array.dtype}")


# ------------------------------------------------------------------------------ trtforge local
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trtforge() -> list[str]:
    exe = shutil.which("trtforge")
    return [exe] if exe else [sys.executable, "-m", "trtforge_runtime.cli"]


def start_local(
    manifest: Path, workdir: Path, log: Path, port: int, *, grpc_port: int = 0, timeout: float = 500
) -> subprocess.Popen[bytes]:
    """`trtforge local MANIFEST` (train/convert as the manifest says, then serve on `port`), returned once
    it serves; gRPC off unless `grpc_port`. A failed or late start raises with its log."""
    cmd = [*trtforge(), "local", str(manifest), "--workdir", str(workdir), "--port", str(port)]
    cmd += ["--grpc-port", str(grpc_port)]
    proc = subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "try it" in text and "metrics:" in text:
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"trtforge local exited with {proc.returncode}:\n{text}")
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(
        f"trtforge local not ready after {timeout:.0f} s:\n{log.read_text(errors='replace')}"
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------------------------ V2 requests
def infer_http(
    url: str, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """POST `url`/v2/models/MODEL/infer in JSON; every output the server returns, by name."""
    body: dict[str, Any] = {
        "inputs": [
            {"name": n, "shape": list(a.shape), "datatype": datatype(a), "data": a.ravel().tolist()}
            for n, a in inputs.items()
        ]
    }
    if outputs is not None:
        body["outputs"] = [{"name": n} for n in outputs]
    req = urllib.request.Request(
        f"{url.rstrip('/')}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer = json.loads(resp.read())
    return {
        o["name"]: np.asarray(o["data"], dtype=DATATYPES[o["datatype"]]).reshape(o["shape"])
        for o in answer["outputs"]
    }


def infer_grpc(
    target: str, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """ModelInfer over gRPC (tritonclient.grpc) at HOST:PORT; every output returned, by name."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(target)
    try:
        infer_inputs = []
        for name, array in inputs.items():
            inp = grpcclient.InferInput(name, list(array.shape), datatype(array))
            inp.set_data_from_numpy(array)
            infer_inputs.append(inp)
        wanted = None if outputs is None else [grpcclient.InferRequestedOutput(n) for n in outputs]
        result = client.infer(model, infer_inputs, outputs=wanted)
        names = [o.name for o in result.get_response().outputs]
        return {n: np.asarray(result.as_numpy(n)) for n in names}
    finally:
        client.close()


# ------------------------------------------------------------------------------ the framework's answer
def tensorflow_outputs(model_dir: Path, x: np.ndarray) -> np.ndarray:
    """A trained model's own answer: its SavedModel's serving signature (one input, one output), run by
    TensorFlow."""
    import tensorflow as tf

    sig = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
    (arg,) = sig.structured_input_signature[1]
    (out,) = sig(**{arg: tf.constant(x)}).values()
    return np.asarray(out)


def onnxruntime_outputs(model: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An ONNX model's own answer (onnxruntime, CPU): every output by name."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, dict(feeds)), strict=True))


def assert_same(served: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray], atol: float) -> None:
    """Every output in `want` was served with its shape: classes (integer, BOOL) equal, floats within
    `atol`."""
    assert set(served) == set(want), f"served outputs {sorted(served)}, expected {sorted(want)}"
    for name, expected in want.items():
        got = served[name]
        assert got.shape == expected.shape, f"output {name!r}: shape {got.shape}, expected {expected.shape}"
        if np.asarray(expected).dtype.kind in "iub":
            assert got.dtype.kind in "iub", f"output {name!r}: {got.dtype}, expected {expected.dtype}"
            np.testing.assert_array_equal(got, expected, err_msg=f"output {name!r}")
        else:
            np.testing.assert_allclose(got, expected, atol=atol, rtol=0, err_msg=f"output {name!r}")
