"""The conversion gate for regression and multi-label models (the task hook of convert/gate.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from trtforge_runtime.convert import gate
from trtforge_runtime.spec.model import AccuracyGate


def test_regression_is_judged_by_r2_and_mae_not_by_top1_or_abs_diff() -> None:
    ref = np.linspace(20, 340, 200, dtype=np.float32).reshape(-1, 1)
    close = ref + np.float32(0.4)  # fp16-like error on targets in the hundreds: far above maxAbsDiff 0.1
    limits = gate.Limits.from_spec(AccuracyGate(), "regression")
    metrics, checks = gate.judge_outputs(ref, close, limits)
    assert metrics.max_abs_diff > 0.1
    assert [(c.metric, c.passed) for c in checks] == [("r2", True)]
    assert checks[0].limit == 0.999 and checks[0].to_json()["atLeast"] is True
    assert gate.sentence(checks[0].to_json()).startswith("r2 0.99") and "(minR2)" in gate.sentence(
        checks[0].to_json()
    )
    strict = gate.Limits.from_spec(AccuracyGate(min_r2=0.5, max_mae=0.1), "regression")
    _, checks = gate.judge_outputs(ref, close, strict)
    assert [(c.metric, c.passed) for c in checks] == [("r2", True), ("mae", False)]
    assert checks[1].value == pytest.approx(0.4, abs=1e-4)
    assert gate.sentence(checks[1].to_json()).endswith("> 0.1 (maxMae)")
    _, worse = gate.judge_outputs(ref, ref[::-1], limits)
    assert not worse[0].passed and "< 0.999 (minR2)" in worse[0].sentence()


def test_multilabel_is_judged_by_label_decisions_and_abs_diff() -> None:
    ref = np.array([[0.9, 0.2, 0.6], [0.1, 0.7, 0.45]] * 50, dtype=np.float32)
    flip = ref.copy()
    flip[0, 2] = 0.4  # one decision of 300 changes
    limits = gate.Limits.from_spec(AccuracyGate(max_abs_diff=0.5), "multilabel")
    _, checks = gate.judge_outputs(ref, flip, limits)
    assert [c.metric for c in checks] == ["maxAbsDiff", "labelDisagreement"]
    assert all(c.passed for c in checks) and checks[1].value == pytest.approx(1 / 300)
    tight = gate.Limits.from_spec(AccuracyGate(max_label_disagreement=0.001), "multilabel")
    _, checks = gate.judge_outputs(ref, flip, tight)
    assert not checks[1].passed and checks[1].sentence().endswith("(maxLabelDisagreement)")


def test_classification_keeps_its_checks() -> None:
    ref = np.array([[0.8, 0.2], [0.3, 0.7]], dtype=np.float32)
    _, checks = gate.judge_outputs(ref, ref[::-1], gate.Limits.from_spec(AccuracyGate(), "classification"))
    assert [c.metric for c in checks] == ["top1Drop", "maxAbsDiff"] and not checks[0].passed


@pytest.mark.slow
def test_multilabel_model_trains_converts_and_is_gated_per_label(tmp_path: Path) -> None:
    """trtforge train -> trtforge convert (best) for a multi-label model: the gate's checks are per label."""
    from sklearn.datasets import make_multilabel_classification
    from trtforge_runtime.cli import main

    x, y = make_multilabel_classification(n_samples=600, n_features=12, n_classes=4, random_state=3)
    np.savez(tmp_path / "tags.npz", x=x.astype(np.float32), y=y)
    doc = {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "tags"},
        "spec": {
            "model": {
                "task": "multilabel",
                "train": {
                    "dataset": {"uri": "tags.npz", "normalize": "standard"},
                    "architecture": {
                        "inputName": "features",
                        "outputName": "tags",
                        "layers": [
                            {"type": "Dense", "units": 32, "activation": "relu"},
                            {"type": "Dense", "units": 4, "activation": "sigmoid"},
                        ],
                    },
                    "learningRate": 0.01,
                    "epochs": 20,
                    "minAccuracy": 0.7,
                },
            },
            "engine": {
                "backend": "onnxruntime",
                "precision": "best",
                "accuracy": {"maxLabelDisagreement": 0.02, "maxAbsDiff": 0.2, "samples": 200},
            },
        },
    }
    manifest = tmp_path / "tags.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    assert main(["train", "-f", str(manifest), "-o", str(tmp_path / "m"), "--progress", "none"]) == 0
    assert (
        main(["convert", "-f", str(manifest), "--model", str(tmp_path / "m"), "-o", str(tmp_path / "e")]) == 0
    )
    gate = json.loads((tmp_path / "e" / "engine.json").read_text())["gate"]
    assert gate["task"] == "multilabel" and 0.7 <= gate["referenceAccuracy"] <= 1.0
    chosen = next(c for c in gate["candidates"] if c["precision"] == gate["chosen"])
    assert [c["metric"] for c in chosen["checks"]] == ["maxAbsDiff", "labelDisagreement"]
    assert all(c["passed"] for c in chosen["checks"]) and chosen["checks"][1]["limit"] == 0.02
