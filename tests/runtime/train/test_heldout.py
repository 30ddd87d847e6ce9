"""The held-out rows custom training code hands over (samples.npz), checked against the model's inputs:
each way they can be wrong is refused naming the key, the input and what is wrong (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from trtforge_runtime.errors import TrainingError
from trtforge_runtime.train import heldout
from trtforge_runtime.train.heldout import ModelInput

INPUTS = [ModelInput("image", "float32", (8, 8, 1)), ModelInput("ids", "int32", (2,))]
ORIGIN = "samples.npz written by the custom training code"


def arrays(n: int = 6, **changes: np.ndarray | None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray | None] = {
        "x_test.image": rng.random((n, 8, 8, 1)).astype(np.float32),
        "x_test.ids": rng.integers(0, 5, (n, 2)).astype(np.int64),
        "y_test": np.arange(n) % 3,
    }
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def refused(a: dict[str, np.ndarray], inputs: list[ModelInput] = INPUTS, task: str = "classification") -> str:
    with pytest.raises(TrainingError) as info:
        heldout.check(a, inputs, task, ORIGIN)
    assert getattr(info.value, "summary", None) == {"customCode": "badSamples"}
    return str(info.value)


def test_rows_per_input_in_the_model_dtypes() -> None:
    held = heldout.check(arrays(), INPUTS, "classification", ORIGIN)
    assert list(held.x_test) == ["image", "ids"] and held.rows == 6
    assert held.x_test["ids"].dtype == np.int32 and held.x_test["image"].dtype == np.float32
    assert held.y_test.dtype == np.int64 and held.x_calib is None
    calib = arrays(
        **{"x_calib.image": np.zeros((3, 8, 8, 1), np.float32), "x_calib.ids": np.ones((3, 2), np.int8)}
    )
    held = heldout.check(calib, INPUTS, "classification", ORIGIN)
    assert (
        held.x_calib is not None and held.x_calib["ids"].dtype == np.int32 and len(held.x_calib["ids"]) == 3
    )


def test_a_model_of_one_input_may_use_plain_x_test() -> None:
    one = [ModelInput("pixels", "float32", (64,))]
    held = heldout.check({"x_test": np.ones((4, 64)), "y_test": np.zeros(4)}, one, "classification", ORIGIN)
    assert held.x_test["pixels"].dtype == np.float32 and held.y_test.tolist() == [0, 0, 0, 0]
    both = {"x_test": np.ones((4, 64)), "x_test.pixels": np.ones((4, 64)), "y_test": np.zeros(4)}
    assert "has both 'x_test' and ['pixels']; keep one" in refused(both, one)


def test_missing_rows_for_an_input_are_named() -> None:
    assert refused(arrays(**{"x_test.ids": None})) == (
        f"{ORIGIN} has no held-out rows for input 'ids' (expected x_test.ids; keys: x_test.image, y_test)"
    )
    nothing = refused({"y_test": np.zeros(3)})
    assert "has no held-out rows for the model's inputs: expected x_test.image, x_test.ids" in nothing
    plain = refused({"x_test": np.zeros((3, 8, 8, 1)), "y_test": np.zeros(3)})
    assert "one 'x_test' array, but the model has 2 inputs (image, ids): give one array per input" in plain
    assert "has no 'y_test': the held-out rows need their labels" in refused(arrays(y_test=None))


def test_names_that_are_no_input_of_the_model() -> None:
    message = refused(arrays(**{"x_test.idz": np.zeros((6, 2), np.int32)}))
    assert message == f"{ORIGIN}: x_test.idz names no input of the model (its inputs: image, ids)"
    calib = refused(arrays(**{"x_calib.pixels": np.zeros((2, 8, 8, 1), np.float32)}))
    assert "x_calib.pixels names no input of the model (its inputs: image, ids)" in calib
    stray = refused(arrays(**{"weights": np.zeros(3)}))
    assert "holds keys trtforge does not read: ['weights']" in stray


def test_row_counts_must_agree() -> None:
    message = refused(arrays(**{"x_test.ids": np.zeros((5, 2), np.int32)}))
    assert message == (
        f"{ORIGIN}: the held-out arrays have different row counts (x_test.image 6, x_test.ids 5, y_test 6); "
        "each needs one row per held-out example"
    )
    assert "held-out arrays have different row counts" in refused(arrays(y_test=np.zeros(7)))
    empty = arrays(0)
    assert "no held-out rows (x_test and y_test are empty)" in refused(empty)
    calib = arrays(
        **{"x_calib.image": np.zeros((3, 8, 8, 1), np.float32), "x_calib.ids": np.zeros((4, 2), np.int32)}
    )
    assert "the calibration arrays have different row counts (x_calib.image 3, x_calib.ids 4)" in refused(
        calib
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "x_test.ids",
            np.full((6, 2), 1.5),
            "x_test.ids holds float64 values such as 1.5, which the model input 'ids' (int32, shape [-1, 2]) "
            "cannot take unchanged; give int32 rows",
        ),
        (
            "x_test.image",
            np.full((6, 8, 8, 1), "a"),
            "x_test.image holds strings (<U1), which the model input 'image' (float32, shape [-1, 8, 8, 1]) "
            "cannot take",
        ),
        (
            "x_test.ids",
            np.full((6, 2), 2**40, np.int64),
            "x_test.ids holds int64 values such as 1099511627776, which the model input 'ids' (int32",
        ),
        ("x_test.image", np.full((6, 8, 8, 1), np.nan, np.float32), "x_test.image holds 384 NaN or infinite"),
        (
            "x_test.image",
            np.zeros((6, 8, 8), np.float32),
            "x_test.image has shape [6, 8, 8], but the model takes input 'image' (float32, shape "
            "[-1, 8, 8, 1])",
        ),
    ],
)
def test_rows_the_model_cannot_take(key: str, value: np.ndarray, message: str) -> None:
    assert message in refused(arrays(**{key: value}))


def test_dynamic_dimensions_and_values_cast_only_when_unchanged() -> None:
    inputs = [ModelInput("tokens", "int64", (None,)), ModelInput("mask", "bool", (None,))]
    ok = {
        "x_test.tokens": np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),  # whole numbers stored as floats
        "x_test.mask": np.array([[1, 0, 1], [0, 0, 1]], np.int8),  # 0/1 as integers
        "y_test": np.array([0, 1]),
    }
    held = heldout.check(ok, inputs, "classification", ORIGIN)
    assert held.x_test["tokens"].dtype == np.int64 and held.x_test["tokens"].tolist()[1] == [4, 5, 6]
    assert held.x_test["mask"].dtype == np.bool_ and held.x_test["mask"].tolist()[0] == [True, False, True]
    longer = {**ok, "x_test.tokens": np.ones((2, 9), np.int32), "x_test.mask": np.ones((2, 9), bool)}
    assert heldout.check(longer, inputs, "classification", ORIGIN).x_test["tokens"].shape == (2, 9)
    two = {**ok, "x_test.mask": np.array([[1, 0, 2], [0, 0, 1]], np.int8)}
    assert (
        "x_test.mask holds int8 values such as 2, which the model input 'mask' (bool, shape [-1, -1]) "
        "cannot take unchanged; give bool rows"
    ) in refused(two, inputs)


def test_labels_as_the_task_has_them() -> None:
    assert "must hold integer class indices, got fractions" in refused(arrays(y_test=np.full(6, 0.5)))
    assert "holds negative class indices (-1)" in refused(arrays(y_test=np.full(6, -1)))
    held = heldout.check(arrays(y_test=np.full(6, 0.5)), INPUTS, "regression", ORIGIN)
    assert held.y_test.dtype == np.float32
    assert "multilabel labels must be 0 or 1" in refused(arrays(y_test=np.full((6, 2), 3)), task="multilabel")


def test_model_inputs_trtforge_cannot_serve() -> None:
    heldout.check_model_inputs(INPUTS, "model.keras")
    with pytest.raises(TrainingError, match=r"input 'text' of dtype string; .*move the tokenizer") as info:
        heldout.check_model_inputs([ModelInput("text", "string", ())], "model.keras")
    assert getattr(info.value, "summary", None) == {"customCode": "badSamples"}
    with pytest.raises(
        TrainingError, match=r"input 'x' of dtype float64; trtforge converts and serves inputs"
    ):
        heldout.check_model_inputs([ModelInput("x", "float64", (3,))], "model.keras")


def test_write_and_read_use_the_published_keys(tmp_path: Path) -> None:
    a = arrays()
    path = heldout.write(
        tmp_path / "samples.npz",
        {"image": a["x_test.image"], "ids": a["x_test.ids"]},
        a["y_test"],
        x_calib={"image": a["x_test.image"][:2], "ids": a["x_test.ids"][:2]},
    )
    back = heldout.read(path)
    assert sorted(back) == ["x_calib.ids", "x_calib.image", "x_test.ids", "x_test.image", "y_test"]
    heldout.write(tmp_path / "one.npz", np.ones((2, 3)), np.zeros(2))
    assert sorted(heldout.read(tmp_path / "one.npz")) == ["x_test", "y_test"]
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(
        TrainingError, match=r"samples\.npz written by the custom training code: not a valid \.npz file"
    ):
        heldout.read(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(TrainingError, match=r"code: a single \.npy array, not an \.npz archive"):
        heldout.read(tmp_path / "single.npy")
