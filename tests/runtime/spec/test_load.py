"""Manifest loading: the example parses; bad manifests fail with the field path named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec import load_manifest


def _write(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "md.yaml"
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return p


def _example(digits_manifest: Path) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(digits_manifest.read_text())  # type: ignore[no-any-return]


def test_example_parses(digits_manifest: Path) -> None:
    md = load_manifest(digits_manifest)
    assert md.metadata.name == "digits"
    train = md.spec.model.train
    assert train is not None
    assert [layer.type for layer in train.architecture.layers] == ["Dense", "Dropout", "Dense"]
    assert md.spec.engine.batch.max == 256


def test_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(_write(tmp_path, "spec: [unclosed"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "nope.yaml")


def test_not_a_model_deployment(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"not a ModelDeployment.*kind 'Deployment'"):
        load_manifest(
            _write(tmp_path, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}})
        )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["spec"]["model"]["train"].update(epochs=0),
            r"spec\.model\.train\.epochs: Input should be",
        ),
        (
            lambda d: d["spec"]["model"]["train"]["architecture"]["layers"].append(
                {"type": "LSTM", "units": 4}
            ),
            r"spec\.model\.train\.architecture\.layers\[3\]\.type: .*'LSTM'",
        ),
        (lambda d: d["spec"]["engine"].update(batch={"min": 8, "opt": 4, "max": 16}), r"min <= opt <= max"),
        (
            lambda d: d["spec"]["serving"]["autoscaling"].update(minReplicas=5, maxReplicas=2),
            r"spec\.serving\.autoscaling: minReplicas must be <= maxReplicas",
        ),
        (lambda d: d["spec"]["model"].update(source={"uri": "/m.onnx", "format": "onnx"}), "exactly one of"),
        (lambda d: d["spec"].update(bogus=1), r"spec\.bogus: Extra inputs are not permitted"),
        (lambda d: d["spec"]["engine"].update(computeCapabilities=["sm89"]), "MAJOR.MINOR"),
    ],
)
def test_schema_violations_name_the_field(tmp_path: Path, digits_manifest: Path, mutate, expected) -> None:  # type: ignore[no-untyped-def]
    doc = _example(digits_manifest)
    mutate(doc)
    with pytest.raises(ManifestError, match=expected):
        load_manifest(_write(tmp_path, doc))
