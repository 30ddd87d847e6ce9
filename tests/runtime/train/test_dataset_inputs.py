"""Datasets for a model of several inputs: an .npz with one array per input under `<features>.<input>`,
split with one permutation for every input and checked against each input (datasets.load_input_splits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from trtforge_runtime.errors import DatasetError
from trtforge_runtime.spec.model import Dataset
from trtforge_runtime.train.datasets import load_dataset, load_input_arrays, load_input_splits
from trtforge_runtime.train.heldout import ModelInput

IMAGE = ModelInput("image", "float32", (8, 8, 1))
TABULAR = ModelInput("tabular", "float32", (3,))
IDS = ModelInput("ids", "int64", (None,))  # a dynamic dimension after the batch


def ds(uri: str | Path, **kw: object) -> Dataset:
    return Dataset.model_validate({"uri": str(uri), **kw})


def _two_inputs(tmp_path: Path, rows: int = 200, **arrays: np.ndarray | None) -> Path:
    """image[i] is filled with i, tabular[i] = (i, 2i, 3i), ids[i] = (i, i): every row names its example."""
    i = np.arange(rows)
    base: dict[str, np.ndarray | None] = {
        "x.image": np.broadcast_to(i[:, None, None, None], (rows, 8, 8, 1)).astype(np.float32),
        "x.tabular": np.stack([i, 2 * i, 3 * i], axis=1).astype(np.float64),
        "x.ids": np.stack([i, i], axis=1).astype(np.float32),  # whole numbers: they cast to int64 unchanged
        "y": i % 4,
    }
    base.update(arrays)
    path = tmp_path / "data.npz"
    np.savez(path, **{k: v for k, v in base.items() if v is not None})  # type: ignore[arg-type]
    return path


def test_every_input_is_split_with_the_same_permutation_and_the_labels(tmp_path: Path) -> None:
    data = _two_inputs(tmp_path)
    s = load_input_splits(ds(data), 42, [IMAGE, TABULAR, IDS])
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (128, 32, 40)
    for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
        example = x["image"][:, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(x["tabular"], np.stack([example, 2 * example, 3 * example], 1))
        np.testing.assert_array_equal(x["ids"], np.stack([example, example], 1))
        np.testing.assert_array_equal(y, example % 4)
    assert s.x_test["tabular"].dtype == np.float32 and s.x_test["ids"].dtype == np.int64
    assert s.y_test.dtype == np.int64
    # the splits are stratified by class and seeded, and disjoint
    assert np.bincount(s.y_test).tolist() == [10, 10, 10, 10]
    again = load_input_splits(ds(data), 42, [IMAGE, TABULAR, IDS])
    np.testing.assert_array_equal(again.x_test["image"], s.x_test["image"])
    seen = {int(v) for x in (s.x_train, s.x_val, s.x_test) for v in x["image"][:, 0, 0, 0]}
    assert seen == set(range(200))


def test_the_rows_are_the_ones_training_splits_out_for_a_model_of_one_input(tmp_path: Path) -> None:
    """One permutation whatever the input count: a model of one input gets load_dataset's test rows."""
    x = np.random.default_rng(0).random((150, 3)).astype(np.float32)
    y = np.arange(150) % 3
    np.savez(tmp_path / "one.npz", x=x, y=y)
    np.savez(tmp_path / "named.npz", **{"x.tabular": x, "y": y})
    want = load_dataset(ds(tmp_path / "one.npz"), 7)
    for name in ("one.npz", "named.npz"):
        got = load_input_splits(ds(tmp_path / name), 7, [TABULAR])
        np.testing.assert_array_equal(got.x_test["tabular"], want.x_test)
        np.testing.assert_array_equal(got.y_train, want.y_train)
    builtin = load_input_splits(ds("builtin://iris"), 42, [ModelInput("features", "float32", (4,))])
    np.testing.assert_array_equal(builtin.x_test["features"], load_dataset(ds("builtin://iris"), 42).x_test)


def test_the_features_key_and_label_key_of_the_spec_apply(tmp_path: Path) -> None:
    rows = 40
    np.savez(
        tmp_path / "d.npz",
        **{
            "inputs.image": np.zeros((rows, 8, 8, 1)),
            "inputs.tabular": np.ones((rows, 3)),
            "t": np.arange(rows),
        },
    )
    x, y = load_input_arrays(ds(tmp_path / "d.npz", features="inputs", label="t"), [IMAGE, TABULAR])
    assert set(x) == {"image", "tabular"} and len(y) == rows


def test_regression_targets_stay_float_and_are_split_unstratified(tmp_path: Path) -> None:
    data = _two_inputs(tmp_path, y=np.linspace(0.0, 1.0, 200), **{"x.ids": None})
    s = load_input_splits(ds(data), 0, [IMAGE, TABULAR], task="regression")
    assert s.y_test.dtype == np.float32
    example = s.x_test["image"][:, 0, 0, 0].astype(int)
    np.testing.assert_allclose(s.y_test, np.linspace(0.0, 1.0, 200)[example], rtol=1e-6)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x.tabular": None},
            r"has no rows for input 'tabular' \(expected x\.tabular; keys: x\.ids, x\.image, y\)",
        ),
        (
            {"x.weather": np.zeros((200, 2))},
            r"x\.weather names no input of the model \(its inputs: image, tabular",
        ),
        (
            {"x.ids": np.zeros((199, 2))},
            r"the arrays have different row counts \(x\.image 200, x\.tabular 200, x\.ids 199, y 200\)",
        ),
        (
            {"x.image": np.zeros((200, 64))},
            r"x\.image has shape \[200, 64\], but the model takes input 'image' ",
        ),
        (
            {"x.ids": np.full((200, 2), 1.5)},
            r"x\.ids holds float64 values such as 1\.5, which the model input 'ids'",
        ),
        ({"x.tabular": np.full((200, 3), np.nan)}, r"x\.tabular holds 600 NaN or infinite values"),
        ({"x.image": np.full((200, 8, 8, 1), "a")}, r"x\.image holds strings \(<U1\), which the model input"),
        ({"y": None}, r"label key 'y' not in the archive \(set spec\.model\.train\.dataset\.label\)"),
        ({"y": np.full(200, -1)}, r"label 'y' holds negative class indices"),
        ({"x": np.zeros((200, 3))}, r"has both 'x' and \['x\.ids', 'x\.image', 'x\.tabular'\]; keep one"),
    ],
    ids=["missing", "extra", "rows", "shape", "dtype", "nan", "strings", "no-label", "label", "both"],
)
def test_each_bad_dataset_is_refused_naming_the_key(
    tmp_path: Path, arrays: dict[str, np.ndarray | None], message: str
) -> None:
    data = _two_inputs(tmp_path, **arrays)
    with pytest.raises(DatasetError, match=rf"dataset {data}:? {message}"):
        load_input_arrays(ds(data), [IMAGE, TABULAR, IDS])


def test_rows_beyond_a_half_inputs_range_are_refused(tmp_path: Path) -> None:
    half = ModelInput("tabular", "float16", (3,))
    data = _two_inputs(tmp_path, **{"x.ids": None, "x.image": None, "x.tabular": np.full((200, 3), 1e6)})
    with pytest.raises(
        DatasetError, match=r"x\.tabular holds values such as 1000000\.0 beyond the range of float16"
    ):
        load_input_arrays(ds(data), [half])
    np.savez(data, **{"x.tabular": np.full((200, 3), 0.5), "y": np.arange(200) % 2})
    x, _ = load_input_arrays(ds(data), [half])
    assert x["tabular"].dtype == np.float16


def test_one_features_array_for_several_inputs_says_what_is_expected(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 67)), y=np.zeros(10))
    with pytest.raises(DatasetError) as err:
        load_input_arrays(ds(tmp_path / "d.npz"), [IMAGE, TABULAR])
    assert str(err.value) == (
        f"dataset {tmp_path / 'd.npz'} has one features array 'x', but the model has 2 inputs "
        "(image, tabular): give one array per input under x.image, x.tabular (the same rows of each)"
    )
    with pytest.raises(DatasetError, match=r"holds one feature array, but the model has 2 inputs .* under "):
        load_input_arrays(ds("builtin://digits"), [IMAGE, TABULAR])
    np.savez(tmp_path / "e.npz", image=np.zeros((10, 8, 8, 1)), tabular=np.zeros((10, 3)), y=np.zeros(10))
    with pytest.raises(
        DatasetError, match=r"no arrays for the model's inputs: expected x\.image, x\.tabular .*"
    ):
        load_input_arrays(ds(tmp_path / "e.npz"), [IMAGE, TABULAR])


def test_per_input_arrays_given_to_training_of_one_features_array_are_named(tmp_path: Path) -> None:
    """spec.model.train.dataset of a layer list reads one features array: per-input keys get a hint."""
    data = _two_inputs(tmp_path)
    with pytest.raises(
        DatasetError, match=r"features key 'x' not in .* x\.ids, x\.image, x\.tabular are one "
    ):
        load_dataset(ds(data), 0)
