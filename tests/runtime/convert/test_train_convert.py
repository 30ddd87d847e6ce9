"""`trtforge train` -> `trtforge convert` with int8 and best on TensorRT-RTX (on CPU) and onnxruntime.

The models are what the declarative path trains, from the repository's examples (fewer epochs): the
digits MLP (`normalize: max`, whose 0-d normalize constants TensorRT-RTX refused once quantized), the
iris CSV model, and a digits Conv2D with `normalize: standard`. int8 must build for sm86 and sm89 and
stay within 1 % top-1 of fp32 on the gate rows (the full-dataset figures are benchmarks/precision_bench.py's).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
ENGINES = {
    "backend": "tensorrt-rtx",
    "computeCapabilities": ["8.6", "8.9"],
    "batch": {"min": 1, "opt": 8, "max": 64},
}


def _digits() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["model"]["train"].update({"epochs": 12, "minAccuracy": 0.8})
    return dict(doc)


def _iris() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "examples" / "iris-csv.yaml").read_text())
    doc["spec"]["model"]["train"].update({"epochs": 25, "learningRate": 0.02, "minAccuracy": 0.8})
    return dict(doc)


def _cnn() -> dict[str, Any]:
    doc = _digits()
    train = doc["spec"]["model"]["train"]
    train["dataset"]["normalize"] = "standard"
    train["architecture"]["inputShape"] = [8, 8, 1]
    train["architecture"]["layers"] = [
        {"type": "Conv2D", "filters": 8, "kernelSize": [3, 3], "padding": "same", "activation": "relu"},
        {"type": "MaxPooling2D"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    metadata = doc["metadata"]
    metadata["name"] = "digits-cnn"
    return doc


MODELS = {"digits": _digits, "iris": _iris, "cnn": _cnn}


@pytest.fixture(scope="module", params=list(MODELS))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real `trtforge train` per model. The iris manifest is written beside a copy of iris.csv, as
    in examples/, so its relative dataset path is resolved against the manifest's folder."""
    root = tmp_path_factory.mktemp(request.param)
    doc = MODELS[request.param]()
    (root / "iris.csv").write_bytes((ROOT / "examples" / "iris.csv").read_bytes())
    spec = root / "train.yaml"
    spec.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trtforge_runtime.cli",
            "train",
            "-f",
            str(spec),
            "-o",
            str(root / "m"),
            "--progress",
            "none",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path_factory.getbasetemp(),  # not the manifest's folder
    )
    if done.returncode != 0:
        pytest.fail(f"trtforge train failed: {done.stderr[-2000:]}")
    return {"root": root, "doc": doc, "model": root / "m", "name": request.param}


def _convert(trained: dict[str, Any], tools: Any, engine: dict[str, Any], tag: str) -> dict[str, Any]:
    doc = copy.deepcopy(trained["doc"])
    doc["spec"]["engine"] = {**doc["spec"]["engine"], **ENGINES, **engine}
    doc["spec"]["engine"]["accuracy"] = {"maxTop1Drop": 0.01, "maxAbsDiff": 0.1, "samples": 512}
    spec = trained["root"] / f"{tag}.yaml"
    spec.write_text(yaml.safe_dump(doc))
    out = trained["root"] / tag
    assert tools.run(spec, trained["model"], out, trained["root"] / "cache") == 0
    return {"doc": tools.read(out), "out": out}


@pytest.mark.parametrize("backend", ["tensorrt-rtx", "onnxruntime"])
def test_int8_builds_and_stays_within_one_percent(trained: dict[str, Any], tools: Any, backend: str) -> None:
    result = _convert(trained, tools, {"precision": "int8", "backend": backend}, f"int8-{backend}")
    doc = result["doc"]
    assert doc["precision"] == "int8" and doc["rejected"] == []
    int8 = doc["gate"]["candidates"][0]
    assert int8["top1Drop"] <= 0.01 and int8["maxAbsDiff"] <= 0.1 and int8["passed"]
    assert doc["gate"]["calibration"]["method"] == "minmax" and doc["gate"]["calibration"]["rows"] >= 64
    if backend == "tensorrt-rtx":
        assert [e["computeCapability"] for e in doc["engines"]] == ["8.6", "8.9"]
        assert all((result["out"] / e["file"]).stat().st_size > 10_000 for e in doc["engines"])
    else:
        assert doc["engines"] == []
    # the served probabilities are float, not multiples of 1/127 (the softmax output is not quantized)
    sess = ort.InferenceSession(
        str(result["out"] / doc["onnxruntime"]["file"]), providers=["CPUExecutionProvider"]
    )
    x = np.load(trained["model"] / "samples.npz")["x_test"][:64]
    probs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert not np.allclose(probs * 127, np.round(probs * 127), atol=1e-3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("backend", ["tensorrt-rtx", "onnxruntime"])
def test_best_keeps_int8_for_trained_models(trained: dict[str, Any], tools: Any, backend: str) -> None:
    doc = _convert(trained, tools, {"precision": "best", "backend": backend}, f"best-{backend}")["doc"]
    assert doc["precision"] == "int8" and [c["precision"] for c in doc["gate"]["candidates"]] == ["int8"]
    assert len(doc["engines"]) == (2 if backend == "tensorrt-rtx" else 0)
