"""Fixtures of the conversion tests: a tiny trained digits model folder and manifests around it.

The model folder is made without TensorFlow (scikit-learn fit, ONNX written with onnx.helper; see
digits_mlp.py) so that the tests exercise conversion, not training. Built engine folders are shared per
session: TensorRT-RTX builds of this model take well under a second each, the imports are what costs.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from trtforge_runtime import cli

# the model helpers of this folder (digits_mlp.py, multi_io.py), importable by the tests here; appended, so
# that `conftest` still resolves to tests/conftest.py
sys.path.append(str(Path(__file__).parent))

import digits_mlp


def manifest(
    engine: dict[str, Any] | None = None, model: dict[str, Any] | None = None, name: str = "digits"
) -> dict:
    """A ModelDeployment document; `engine` overrides the engine section's defaults used here."""
    eng: dict[str, Any] = {
        "backend": "tensorrt-rtx",
        "precision": "fp16",
        "batch": {"min": 1, "opt": 8, "max": 64},
        "accuracy": {"maxTop1Drop": 0.01, "samples": 256},
        "computeCapabilities": ["8.9"],
        "workspaceMib": 256,
    }
    eng.update(engine or {})
    mdl = model or {
        "train": {
            "dataset": {"uri": "builtin://digits"},
            "architecture": {
                "inputName": "pixels",
                "outputName": "probabilities",
                "layers": [{"type": "Dense", "units": 10, "activation": "softmax"}],
            },
        }
    }
    return {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": mdl, "engine": eng},
    }


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def write(engine: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> Path:
        path = tmp_path / f"spec-{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(manifest(engine, model)))
        return path

    return write


def run_convert(spec: Path, model: Path | None, out: Path, cache: Path | None = None, *extra: str) -> int:
    argv = ["convert", "-f", str(spec), "-o", str(out)]
    if model is not None:
        argv += ["--model", str(model)]
    if cache is not None:
        argv += ["--cache", str(cache)]
    return cli.main([*argv, *extra])


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digits_mlp.write_model_dir(tmp_path_factory.mktemp("model") / "digits")


@pytest.fixture(scope="session")
def miscalibrated_model_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model, but its int8 calibration rows are scaled by 0.01: int8 saturates and disagrees."""
    out = tmp_path_factory.mktemp("model") / "miscalibrated"
    shutil.copytree(model_dir, out)
    with np.load(model_dir / "samples.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["x_calib"] = arrays["x_calib"] * 0.01
    np.savez(out / "samples.npz", **arrays)
    return out


@pytest.fixture(scope="session")
def uncalibrated_model_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model with test rows but no calibration rows (x_calib) in samples.npz."""
    out = tmp_path_factory.mktemp("model") / "uncalibrated"
    shutil.copytree(model_dir, out)
    with np.load(model_dir / "samples.npz") as data:
        np.savez(out / "samples.npz", x_test=data["x_test"], y_test=data["y_test"])
    return out


def write_model_folder(out: Path, onnx_bytes: bytes, like: Path) -> Path:
    """A model folder holding `onnx_bytes` with a manifest whose digest matches, samples from `like`."""
    import hashlib

    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(onnx_bytes)
    shutil.copyfile(like / "samples.npz", out / "samples.npz")
    meta = json.loads((like / "manifest.json").read_text())
    meta["digest"] = "sha256:" + hashlib.sha256(onnx_bytes).hexdigest()
    (out / "manifest.json").write_text(json.dumps(meta))
    return out


def read_engine_json(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "engine.json").read_text()))


@pytest.fixture(scope="session")
def tools() -> Any:
    """The helpers above, for test modules (conftest modules are not importable by name here)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        run=run_convert,
        read=read_engine_json,
        manifest=manifest,
        write_model_folder=write_model_folder,
        digits_mlp=digits_mlp,
    )


@pytest.fixture(scope="session")
def fp16_build(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real TensorRT-RTX fp16 conversion for compute capabilities 8.6 and 8.9, shared by tests."""
    root = tmp_path_factory.mktemp("fp16")
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(manifest({"precision": "fp16", "computeCapabilities": ["8.6", "8.9"]})))
    out, cache = root / "engine", root / "cache"
    assert run_convert(spec, model_dir, out, cache) == 0
    return {"spec": spec, "out": out, "cache": cache, "root": root}
