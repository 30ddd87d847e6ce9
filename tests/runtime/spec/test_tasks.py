"""spec.model.task, train.custom and the gate fields: pydantic and the CRD's CEL rules agree.

Every manifest of the corpus is checked twice: by the pydantic model (`load_manifest`, what `trtforge`
runs without a cluster) and by the CRD schema as the API server applies it (the test API server's
structural-schema and CEL validation, `kube_emulator.validation.admit_custom`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_emulator.validation import admit_custom
from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec.crd import build_crd
from trtforge_runtime.spec.load import load_manifest

BASE: dict[str, Any] = {
    "apiVersion": "trtforge.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "m"},
    "spec": {
        "model": {
            "train": {
                "dataset": {"uri": "builtin://diabetes"},
                "architecture": {"layers": [{"type": "Dense", "units": 1}]},
            }
        }
    },
}


def _doc(
    model: dict[str, Any] | None = None, train: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["spec"]["model"].update(model or {})
    doc["spec"]["model"]["train"].update(train or {})
    doc["spec"].update(spec)
    return doc


def _crd_errors(doc: dict[str, Any]) -> list[str]:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [
        str(e.message if hasattr(e, "message") else e) for e in admit_custom(copy.deepcopy(doc), schema, None)
    ]


def _pydantic_error(doc: dict[str, Any], tmp_path: Path) -> str | None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_manifest(path)
    except ManifestError as exc:
        return str(exc)
    return None


GOOD = [
    _doc({"task": "regression"}, {"loss": "huber", "maxMae": 50.0, "minR2": 0.3}),
    _doc({"task": "regression"}, engine={"accuracy": {"minR2": 0.99, "maxMae": 2.0}}),
    _doc({"task": "multilabel"}, {"minAccuracy": 0.8}, engine={"accuracy": {"maxLabelDisagreement": 0.02}}),
    _doc({"task": "classification"}, {"loss": "categorical_crossentropy", "minAccuracy": 0.5}),
    _doc(train={"architecture": None, "custom": {"entryPoint": "pkg.mod:train", "code": "train.py"}}),
    _doc(train={"architecture": None, "custom": {"command": ["python", "t.py"], "image": "me/t:1"}}),
]

BAD = [
    (
        _doc({"task": "regression"}, {"loss": "sparse_categorical_crossentropy"}),
        "task regression trains with loss",
    ),
    (_doc({"task": "multilabel"}, {"loss": "mean_squared_error"}), "task multilabel trains with loss"),
    (_doc({"task": "classification"}, {"loss": "huber"}), "task classification trains with loss"),
    (_doc({"task": "regression"}, {"minAccuracy": 0.5}), "minAccuracy does not apply to regression"),
    (_doc({"task": "classification"}, {"maxMae": 3.0}), "maxMae and train.minR2 gate regression"),
    (_doc({"task": "multilabel"}, {"minR2": 0.5}), "maxMae and train.minR2 gate regression"),
    (
        _doc({"task": "classification"}, engine={"accuracy": {"minR2": 0.9}}),
        "minR2 and maxMae gate regression",
    ),
    (_doc({"task": "regression"}, engine={"accuracy": {"maxLabelDisagreement": 0.1}}), "gates multilabel"),
    (_doc({"task": "ranking"}), "ranking"),
    (_doc(train={"architecture": None}), "exactly one of architecture or custom"),
    (
        _doc(train={"custom": {"entryPoint": "m:f"}}),
        "exactly one of architecture or custom",
    ),
    (_doc(train={"architecture": None, "custom": {"code": "x.py"}}), "exactly one of command or entryPoint"),
    (
        _doc(train={"architecture": None, "custom": {"command": ["x"], "entryPoint": "m:f"}}),
        "exactly one of command or entryPoint",
    ),
    (_doc(train={"architecture": None, "custom": {"entryPoint": "no-colon"}}), "entryPoint"),
    (_doc(train={"architecture": None, "custom": {"command": ["x"], "timeoutSeconds": 0}}), "timeoutSeconds"),
]


@pytest.mark.parametrize("doc", GOOD)
def test_valid_combinations_pass_both_validators(doc: dict[str, Any], tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(doc))
    _strip_nones(doc)
    assert _pydantic_error(doc, tmp_path) is None
    assert _crd_errors(doc) == []


@pytest.mark.parametrize(("doc", "message"), BAD)
def test_invalid_combinations_are_refused_by_both(doc: dict[str, Any], message: str, tmp_path: Path) -> None:
    _strip_nones(doc)
    error = _pydantic_error(doc, tmp_path)
    assert error is not None and message in error
    crd = _crd_errors(doc)
    assert crd, f"the CRD accepts what pydantic refuses ({message})"


def test_loss_defaults_per_task(tmp_path: Path) -> None:
    for task, loss in (
        ("classification", "sparse_categorical_crossentropy"),
        ("regression", "mean_squared_error"),
        ("multilabel", "binary_crossentropy"),
    ):
        doc = _doc({"task": task})
        path = tmp_path / f"{task}.yaml"
        path.write_text(yaml.safe_dump(doc))
        assert load_manifest(path).spec.model.loss == loss


def _strip_nones(doc: Any) -> None:
    if isinstance(doc, dict):
        for key in [k for k, v in doc.items() if v is None]:
            del doc[key]
        for v in doc.values():
            _strip_nones(v)
