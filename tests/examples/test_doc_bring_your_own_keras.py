"""docs/conversion.md, "Bring your own Keras model", run as a newcomer runs it: the training script and
the manifest exactly as the document prints them (the model's two inputs with a dataset of one array per
input for the gate and int8 calibration), `trtforge local my-model.yaml`, the curl request it suggests,
and docs/serving.md's two-input tritonclient snippet; the served answers are compared with what Keras
itself predicts with the user's model."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains a small Keras model and converts it (TensorFlow in subprocesses)

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _blocks(doc: str, start: str, end: str | None = None) -> list[tuple[str, str]]:
    text = (DOCS / doc).read_text()
    section = text[text.index(start) : text.index(end) if end else None]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(port: int, body: bytes) -> dict[str, object]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/my-model/infer", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer: dict[str, object] = json.loads(resp.read())
    return answer


def _wait_ready(port: int, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"trtforge local exited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"trtforge local did not become ready:\n{log.read_text()}")


def test_the_documented_keras_model_with_two_inputs_is_served_as_keras_predicts(tmp_path: Path) -> None:
    (script, code), (kind, manifest) = _blocks(
        "conversion.md", "## Bring your own Keras model", "## Models with several inputs and outputs"
    )[:2]
    assert (script, kind) == ("python", "yaml")
    (tmp_path / "my_train.py").write_text(code)
    (tmp_path / "my-model.yaml").write_text(manifest)
    client = next(
        c for lang, c in _blocks("serving.md", "A model of several inputs takes one") if lang == "python"
    )
    port = _free_port()
    (tmp_path / "client.py").write_text(client.replace("127.0.0.1:8080", f"127.0.0.1:{port}"))

    run = subprocess.run([sys.executable, "my_train.py"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    keras_says = (
        "import keras, numpy as np; m = keras.models.load_model('my-model.keras'); r = np.load('rows.npz'); "
        "np.save('keras.npy', m.predict([r['image'], r['tabular']], verbose=0))"
    )
    subprocess.run([sys.executable, "-c", keras_says], cwd=tmp_path, check=True, capture_output=True)

    log = tmp_path / "local.log"
    trtforge = Path(sys.executable).with_name("trtforge")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(trtforge), "local", "my-model.yaml", "--port", str(port), "--grpc-port", "0"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        _wait_ready(port, proc, log)
        printed = log.read_text()
        assert "[1/3] train: skipped: spec.model.source (my-model.keras) is used as is" in printed
        request = tmp_path / ".trtforge" / "my-model" / "request.json"
        assert f"-d @{request}" in printed
        assert _post(port, request.read_bytes())["outputs"]

        rows = np.load(tmp_path / "rows.npz")
        body = {
            "inputs": [
                {
                    "name": n,
                    "shape": list(rows[n].shape),
                    "datatype": "FP32",
                    "data": rows[n].ravel().tolist(),
                }
                for n in ("image", "tabular")
            ]
        }
        (answer,) = _post(port, json.dumps(body).encode())["outputs"]  # type: ignore[misc]
        served = np.asarray(answer["data"], np.float32).reshape(answer["shape"])
        # the gate and int8 calibration ran on data.npz's rows of both inputs (never synthetic rows);
        # `best` keeps int8 when it passes the gate's maxAbsDiff 0.1 on them, else fp16
        engine = json.loads((tmp_path / ".trtforge" / "my-model" / "engine" / "engine.json").read_text())
        gate = engine["gate"]
        assert gate["data"] == "test" and gate["samples"] == 360  # testSplit 0.2 of the 1797 digits
        int8 = next(c for c in gate["candidates"] if c["precision"] == "int8")
        assert int8.get("rejectedBy") != "calibration", int8
        if engine["precision"] == "int8":
            assert gate["calibration"]["origin"] == "data.npz" and gate["calibration"]["rows"] == 1024
        atol = {"int8": 0.1, "fp16": 0.01}[engine["precision"]]
        np.testing.assert_allclose(served, np.load(tmp_path / "keras.npy"), atol=atol)

        said = subprocess.run([sys.executable, "client.py"], cwd=tmp_path, capture_output=True, text=True)
        assert said.returncode == 0, said.stderr[-3000:]
        first = said.stdout.split("]")[0].strip("[ \n").split()
        assert [int(v) for v in first] == served.argmax(axis=1).tolist()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()
