"""`trtforge train` for regression and multi-label models: metrics, gate reports, artifacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TrainCli = Callable[..., tuple[int, str, str]]
WriteManifest = Callable[..., Path]

REGRESSION: dict[str, Any] = {
    "dataset": {"uri": "builtin://diabetes", "normalize": "standard"},
    "architecture": {
        "inputName": "features",
        "outputName": "progression",
        "layers": [{"type": "Dense", "units": 16, "activation": "relu"}, {"type": "Dense", "units": 1}],
    },
    "learningRate": 0.05,
    "epochs": 15,
    "minAccuracy": 0.0,
}


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _with_task(path: Path, task: str) -> Path:
    import yaml

    doc = yaml.safe_load(path.read_text())
    doc["spec"]["model"]["task"] = task
    path.write_text(yaml.safe_dump(doc))
    return path


def test_regression_reports_error_metrics_and_gates_on_them(
    write_manifest: WriteManifest, train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    import onnxruntime as ort

    out = tmp_path / "reg"
    spec = _with_task(
        write_manifest({**REGRESSION, "loss": "huber", "maxMae": 80.0, "minR2": 0.1}), "regression"
    )
    code, stdout, _ = train_cli(spec, out)
    assert code == 0, stdout
    metrics = read(out / "metrics.json")
    assert metrics["task"] == "regression"
    test = metrics["test"]
    assert set(test) == {"mae", "rmse", "r2", "loss"} and 0.1 <= test["r2"] <= 1 and test["mae"] <= 80
    assert [c["setting"] for c in metrics["gate"]["checks"]] == [
        "spec.model.train.maxMae",
        "spec.model.train.minR2",
    ]
    assert "test MAE" in stdout and "<= maxMae 80: passed" in stdout
    manifest = read(out / "manifest.json")
    assert manifest["task"] == "regression"
    assert manifest["outputs"] == [{"name": "progression", "shape": [-1, 1], "datatype": "FP32"}]
    with np.load(out / "samples.npz") as samples:
        x, y = samples["x_test"], samples["y_test"]
    assert y.dtype == np.float32 and y.min() >= 25 and y.max() <= 346  # raw diabetes targets, not classes
    pred = ort.InferenceSession(str(out / "model.onnx")).run(None, {"features": x})[0]
    assert float(np.mean(np.abs(pred[:, 0] - y))) == pytest.approx(test["mae"], rel=1e-4)
    assert read(termination_log)["task"] == "regression"

    strict = _with_task(write_manifest({**REGRESSION, "epochs": 1, "minR2": 0.99}), "regression")
    code, _, err = train_cli(strict, tmp_path / "strict")
    assert code == 4
    measured = read(tmp_path / "strict" / "metrics.json")["test"]["r2"]
    assert f"test R² {measured:.4f} is below the required spec.model.train.minR2 0.99" in err
    report = read(termination_log)
    assert (
        report["reason"] == "QualityGateError" and report["metric"] == "test R²" and report["limit"] == 0.99
    )


def test_multilabel_trains_sigmoid_outputs_and_gates_per_label(
    write_manifest: WriteManifest, train_cli: TrainCli, tmp_path: Path
) -> None:
    from sklearn.datasets import make_multilabel_classification

    x, y = make_multilabel_classification(n_samples=600, n_features=12, n_classes=4, random_state=3)
    np.savez(tmp_path / "tags.npz", x=x.astype(np.float32), y=y)
    arch = {
        "layers": [
            {"type": "Dense", "units": 32, "activation": "relu"},
            {"type": "Dense", "units": 4, "activation": "sigmoid"},
        ]
    }
    spec = write_manifest(
        {
            "dataset": {"uri": str(tmp_path / "tags.npz"), "normalize": "standard"},
            "architecture": arch,
            "learningRate": 0.01,
            "epochs": 30,
            "minAccuracy": 0.7,
        }
    )
    code, stdout, err = train_cli(_with_task(spec, "multilabel"), tmp_path / "ml")
    assert code == 0, err
    metrics = read(tmp_path / "ml" / "metrics.json")
    assert set(metrics["test"]) == {"accuracy", "minLabelAccuracy", "exactMatch", "loss"}
    assert metrics["test"]["accuracy"] >= 0.7 and "test per-label accuracy" in stdout
    with np.load(tmp_path / "ml" / "samples.npz") as samples:
        assert samples["y_test"].shape[1] == 4

    softmax = {"layers": [{"type": "Dense", "units": 4, "activation": "softmax"}]}
    bad = _with_task(
        write_manifest({"dataset": {"uri": str(tmp_path / "tags.npz")}, "architecture": softmax}),
        "multilabel",
    )
    code, _, err = train_cli(bad, tmp_path / "bad")
    assert code == 2 and "needs activation: sigmoid on its last layer" in err
    classes = write_manifest({"dataset": {"uri": str(tmp_path / "tags.npz")}})
    code, _, err = train_cli(classes, tmp_path / "cls")
    assert code == 3 and "must be one class index per row" in err and not (tmp_path / "cls").exists()
