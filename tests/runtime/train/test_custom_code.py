"""Where custom training code comes from (custom.code) and its digest; no training here."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest
from trtforge_runtime.errors import TrainingError
from trtforge_runtime.train import custom


def test_code_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest_dir = tmp_path / "manifests"
    manifest_dir.mkdir()
    (manifest_dir / "train.py").write_text("x = 1\n")
    assert custom.code_location(None, manifest_dir, tmp_path) is None
    assert custom.code_location("train.py", manifest_dir, tmp_path) == manifest_dir / "train.py"
    assert (
        custom.code_location(f"file://{manifest_dir}/train.py", manifest_dir, tmp_path)
        == manifest_dir / "train.py"
    )
    monkeypatch.setenv("TRTFORGE_PVC_ROOT", str(tmp_path / "pvc"))
    assert custom.code_location("pvc://team/src", manifest_dir, tmp_path) == tmp_path / "pvc" / "team" / "src"
    with pytest.raises(
        TrainingError, match=r"spec\.model\.train\.custom\.code pvc://team: .*pvc://CLAIM/PATH"
    ):
        custom.code_location("pvc://team", manifest_dir, tmp_path)


def test_remote_code_is_fetched_file_or_folder(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/pkg/train.py", b"def train(ctx):\n    return None\n")
    fs.pipe("/bucket/pkg/helpers/util.py", b"Y = 2\n")
    folder = custom.code_location("memory://bucket/pkg", tmp_path, tmp_path / "a")
    assert folder is not None and (folder / "helpers" / "util.py").read_text() == "Y = 2\n"
    single = custom.code_location("memory://bucket/pkg/train.py", tmp_path, tmp_path / "b")
    assert single is not None and single.name == "train.py" and "def train" in single.read_text()
    assert custom.local_code_digest("memory://bucket/pkg", tmp_path) is None  # remote: always re-run


def test_tree_digest_follows_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("a")
    first = custom.tree_digest(tmp_path / "src")
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert custom.tree_digest(tmp_path / "src") == first  # bytecode caches do not count
    (tmp_path / "src" / "a.py").rename(tmp_path / "src" / "b.py")
    assert custom.tree_digest(tmp_path / "src") != first
    assert custom.local_code_digest("src", tmp_path) == custom.tree_digest(tmp_path / "src")
    assert custom.local_code_digest("missing.py", tmp_path) is None


def test_the_environment_of_the_code(tmp_path: Path) -> None:
    from trtforge_runtime.spec.model import CustomTraining

    ws = custom.Workspace(tmp_path)
    spec = {"task": "regression", "train": {"epochs": 3, "batchSize": 8, "seed": 5}}
    c = CustomTraining(command=["python", "t.py"], env={"PYTHONPATH": "/opt/code", "MINE": "1"})
    env = custom.environment(ws, c, tmp_path / "code", spec)
    assert env["TRTFORGE_OUTPUT_DIR"] == str(tmp_path / "output") and env["TRTFORGE_TASK"] == "regression"
    assert (env["TRTFORGE_EPOCHS"], env["TRTFORGE_BATCH_SIZE"], env["TRTFORGE_SEED"]) == ("3", "8", "5")
    assert env["PYTHONPATH"].split(":") == [str(tmp_path / "code"), "/opt/code"] and env["MINE"] == "1"
    assert custom.command_of(c) == ["python", "t.py"]
    entry = CustomTraining(entryPoint="pkg.mod:fit")
    assert custom.command_of(entry)[1:] == ["-m", "trtforge_runtime.train.custom", "pkg.mod:fit"]


def _raw(*inputs: custom.ModelInput) -> custom._Raw:
    return custom._Raw(call=lambda x: x, inputs=list(inputs), output="probabilities", write=lambda p: None)


def test_served_inputs_with_a_dataset_or_the_codes_own_rows() -> None:
    """With a dataset the model takes its rows as one float32 input (renamed by inputName); a model of
    several inputs, or held-out rows of the code's own, contradict the dataset; without a dataset the
    model's own typed inputs are served and its samples.npz is required."""
    import numpy as np
    from trtforge_runtime.spec.model import CustomTraining

    entry = CustomTraining(entryPoint="m:f")
    one = _raw(custom.ModelInput("pixels", "float64", (64,)))
    inputs, held = custom._served_inputs(one, entry, (64,), None, "classification", "model.keras")
    assert inputs == [custom.ModelInput("pixels", "float32", (64,))] and held is None
    renamed = CustomTraining(entryPoint="m:f", inputName="x")
    assert custom._served_inputs(one, renamed, (64,), None, "classification", "m")[0][0].name == "x"
    rows = {"x_test": np.zeros((2, 64)), "y_test": np.zeros(2)}
    with pytest.raises(TrainingError, match=r"wrote samples\.npz, but spec\.model\.train\.dataset is set"):
        custom._served_inputs(one, entry, (64,), rows, "classification", "model.keras")
    two = _raw(custom.ModelInput("image", "float32", (8, 8, 1)), custom.ModelInput("ids", "int64", (2,)))
    with pytest.raises(
        TrainingError, match=r"has 2 inputs \(image, ids\), but spec\.model\.train\.dataset's"
    ):
        custom._served_inputs(two, entry, (64,), None, "classification", "model.keras")
    with pytest.raises(TrainingError, match=r"input 'pixels' of dtype float64; trtforge converts and serves"):
        custom._served_inputs(one, entry, None, None, "classification", "model.keras")  # no dataset cast
    one32 = _raw(custom.ModelInput("pixels", "float32", (64,)))
    with pytest.raises(TrainingError, match=r"spec\.model\.train\.dataset is not set, it must write"):
        custom._served_inputs(one32, entry, None, None, "classification", "model.keras")
    own = {
        "x_test.image": np.zeros((3, 8, 8, 1)),
        "x_test.ids": np.ones((3, 2), np.int8),
        "y_test": [0, 1, 2],
    }
    inputs, held = custom._served_inputs(
        two, entry, None, {k: np.asarray(v) for k, v in own.items()}, "classification", "m"
    )
    assert [(t.name, t.dtype) for t in inputs] == [("image", "float32"), ("ids", "int64")]
    assert held is not None and held.x_test["ids"].dtype == np.int64 and held.rows == 3
    spaced = _raw(custom.ModelInput("an image", "float32", (3,)), custom.ModelInput("ids", "int64", (2,)))
    with pytest.raises(TrainingError, match=r"each needs a distinct name of letters, digits and _"):
        custom._served_inputs(spaced, entry, None, None, "classification", "model.keras")
