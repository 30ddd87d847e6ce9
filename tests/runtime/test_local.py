"""`trtforge local`: train -> convert -> serve on this machine, then skip what is already up to date."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from trtforge_runtime.artifacts import sha256_file, write_json
from trtforge_runtime.local import model_is_current
from trtforge_runtime.spec.load import load_manifest

ROOT = Path(__file__).resolve().parents[2]


def small_manifest(tmp_path: Path, epochs: int = 4) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["model"]["train"]["epochs"] = epochs
    doc["spec"]["model"]["train"]["minAccuracy"] = 0.5
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_model_is_current_compares_spec_and_digest(tmp_path: Path) -> None:
    manifest = small_manifest(tmp_path)
    md = load_manifest(manifest)
    model = tmp_path / "model"
    model.mkdir()
    assert model_is_current(model, md) is None
    (model / "model.onnx").write_bytes(b"onnx bytes")
    digest = sha256_file(model / "model.onnx")
    spec = md.spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    write_json(model / "manifest.json", {"digest": digest, "spec": spec})
    assert model_is_current(model, md) == digest
    # serving/engine changes do not retrain
    other = json.loads(json.dumps(spec))
    other["serving"]["replicas"] = 3
    write_json(model / "manifest.json", {"digest": digest, "spec": other})
    assert model_is_current(model, md) == digest
    # a different training spec or a modified model file does
    other["model"]["train"]["epochs"] = 99
    write_json(model / "manifest.json", {"digest": digest, "spec": other})
    assert model_is_current(model, md) is None
    write_json(model / "manifest.json", {"digest": digest, "spec": spec})
    (model / "model.onnx").write_bytes(b"tampered")
    assert model_is_current(model, md) is None


def _trtforge() -> list[str]:
    exe = shutil.which("trtforge")
    return [exe] if exe else [sys.executable, "-m", "trtforge_runtime.cli"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_until_ready(cmd: list[str], log: Path, timeout: float = 400) -> tuple[subprocess.Popen[bytes], str]:
    out = log.open("wb")
    proc = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "try it" in text and "metrics:" in text:
            return proc, text
        if proc.poll() is not None:
            raise AssertionError(f"trtforge local exited with {proc.returncode}:\n{text}")
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"trtforge local not ready after {timeout} s:\n{log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_local_trains_converts_serves_then_skips_what_is_current(tmp_path: Path) -> None:
    import tritonclient.http as httpclient

    manifest = small_manifest(tmp_path)
    workdir = tmp_path / "work"
    port = _free_port()
    cmd = [
        *_trtforge(),
        "local",
        str(manifest),
        "--workdir",
        str(workdir),
        "--port",
        str(port),
        "--grpc-port",
        "0",
    ]
    proc, text = _run_until_ready(cmd, tmp_path / "first.log")
    try:
        for stage in (
            "[1/3] train: 4 epochs",
            "[1/3] train: test accuracy",
            "[2/3] convert: done",
            "[3/3] serve: ready",
        ):
            assert stage in text, text
        curl = re.search(r"curl -s -X POST (\S+) -H 'Content-Type: application/json' -d @(\S+)", text)
        assert curl is not None, text
        assert curl.group(1) == f"http://127.0.0.1:{port}/v2/models/digits/infer"
        request = json.loads(Path(curl.group(2)).read_text())
        assert request["inputs"][0]["name"] == "pixels"

        # a real client, the whole held-out test set in one binary request: correct digit predictions
        samples = np.load(workdir / "digits" / "model" / "samples.npz")
        x, y = samples["x_test"].astype(np.float32), samples["y_test"]
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_model_ready("digits")
        inp = httpclient.InferInput("pixels", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        probs = client.infer("digits", [inp]).as_numpy("probabilities")
        assert probs.shape == (len(x), 10)
        accuracy = float((probs.argmax(axis=1) == y).mean())
        metrics = json.loads((workdir / "digits" / "model" / "metrics.json").read_text())
        assert accuracy >= 0.5
        assert abs(accuracy - metrics["test"]["accuracy"]) <= 0.02  # the served model is the trained one
    finally:
        assert _stop(proc) == 0

    proc, text = _run_until_ready(cmd, tmp_path / "second.log")
    try:
        assert "[1/3] train: up to date, skipped" in text, text
        assert "[2/3] convert: up to date, reused" in text, text
        assert "[3/3] serve: ready" in text
    finally:
        assert _stop(proc) == 0


@pytest.mark.parametrize(
    ("task", "y", "expected"),
    [
        ("classification", np.int64(7), "whose label is 7: the output's argmax should be 7"),
        ("regression", np.float32(151.0), "whose target is 151: the output should be close to it"),
        (
            "multilabel",
            np.array([0, 1, 1, 0]),
            "with labels [1, 2]: exactly those outputs should be above 0.5",
        ),
    ],
)
def test_example_request_says_what_the_answer_shows_per_task(
    tmp_path: Path, task: str, y: np.ndarray, expected: str
) -> None:
    from trtforge_runtime.local import write_example_request

    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["model"]["task"] = task
    doc["spec"]["model"]["train"]["loss"] = {
        "classification": "sparse_categorical_crossentropy",
        "regression": "mean_squared_error",
        "multilabel": "binary_crossentropy",
    }[task]
    doc["spec"]["model"]["train"]["minAccuracy"] = 0.0
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    np.savez(tmp_path / "samples.npz", x_test=np.ones((2, 64), np.float32), y_test=np.stack([y, y]))
    engine_doc = {"model": {"inputs": [{"name": "pixels"}]}}
    request, hint = write_example_request(
        load_manifest(path), engine_doc, tmp_path, tmp_path / "request.json"
    )
    assert hint is not None and expected in hint
    body = json.loads(request.read_text())
    assert body["inputs"][0]["name"] == "pixels" and body["inputs"][0]["shape"] == [1, 64]


def test_custom_training_code_that_changed_is_retrained(tmp_path: Path) -> None:
    from trtforge_runtime.train.custom import tree_digest

    code = tmp_path / "train_me.py"
    code.write_text("def train(ctx):\n    return None\n")
    doc = yaml.safe_load((ROOT / "examples" / "custom-train.yaml").read_text())
    doc["spec"]["model"]["train"]["custom"].update(entryPoint="train_me:train", code="train_me.py")
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(doc))
    md = load_manifest(path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(b"onnx bytes")
    digest = sha256_file(model / "model.onnx")
    spec = md.spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    write_json(model / "manifest.json", {"digest": digest, "spec": spec, "codeDigest": tree_digest(code)})
    assert model_is_current(model, md, tmp_path) == digest
    code.write_text("def train(ctx):\n    return 1\n")  # the user edited their code: train again
    assert model_is_current(model, md, tmp_path) is None
    code.unlink()
    assert model_is_current(model, md, tmp_path) is None
