"""Helpers of the training tests: tiny manifests, running `trtforge train` in-process, reading outputs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from trtforge_runtime.cli import main

TINY_SPEC: dict[str, Any] = {
    "dataset": {"uri": "builtin://digits"},
    "architecture": {
        "inputName": "pixels",
        "outputName": "probabilities",
        "layers": [
            {"type": "Dense", "units": 16, "activation": "relu"},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    },
    "epochs": 2,
    "batchSize": 32,
    "seed": 7,
    "minAccuracy": 0.0,
}


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def manifest(train: dict[str, Any] | None = None, name: str = "tiny") -> dict[str, Any]:
    return {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": {"train": merge(TINY_SPEC, train or {})}},
    }


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[..., Path]:
    """write_manifest(train_patch=None, name="tiny") -> path of a ModelDeployment YAML file."""
    counter = iter(range(1_000_000))

    def write(train: dict[str, Any] | None = None, name: str = "tiny") -> Path:
        path = tmp_path / f"manifest-{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(manifest(train, name)))
        return path

    return write


@pytest.fixture
def train_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """train_cli(manifest, output, *flags) -> (exit code, stdout, stderr) of `trtforge train`."""

    def run(manifest_path: Path, output: Path, *flags: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["train", "-f", str(manifest_path), "-o", str(output), "--progress", "none", *flags])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("TRTFORGE_TERMINATION_MESSAGE_PATH", str(path))
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


@pytest.fixture
def leftovers() -> Callable[[Path], list[str]]:
    """leftovers(folder) -> names of temporary folders of atomic_output_dir left in `folder`."""
    return _leftovers
