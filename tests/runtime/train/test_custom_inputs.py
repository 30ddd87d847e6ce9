"""`trtforge train` with custom training code whose model has several named, typed inputs and no dataset:
the code's own held-out rows per input (samples.npz) drive the ONNX check, the quality gate and the
published samples; rows that do not fit the model are refused naming what is wrong, keeping what is stored.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

TrainCli = Callable[..., tuple[int, str, str]]

# A model of two inputs (a float image and int32 ids through an Embedding) on data the code makes itself;
# MODE says how it hands over its held-out rows (or writes a SavedModel instead of returning the model).
CODE = """
import os

import keras
import numpy as np


def data():
    rng = np.random.default_rng(0)
    image = rng.random((240, 4, 4, 1), dtype=np.float32)
    ids = rng.integers(0, 5, (240, 2)).astype(np.int32)
    y = (image.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64) + (ids[:, 0] > 2)
    return image, ids, y


def build():
    image = keras.Input((4, 4, 1), name="image")
    ids = keras.Input((2,), name="ids", dtype="int32")
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, activation="relu")(image))
    e = keras.layers.Flatten()(keras.layers.Embedding(5, 3)(ids))
    h = keras.layers.Concatenate()([x, e])
    out = keras.layers.Dense(3, activation="softmax", name="probabilities")(h)
    return keras.Model([image, ids], out)


def train(ctx):
    keras.utils.set_random_seed(ctx.seed)
    image, ids, y = data()
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit([image[:200], ids[:200]], y[:200], epochs=ctx.epochs, verbose=0)
    test, calib = {"image": image[200:], "ids": ids[200:]}, {"image": image[:64], "ids": ids[:64]}
    mode = os.environ.get("MODE", "ok")
    if mode == "ok":
        ctx.write_samples(test, y[200:], x_calib=calib)
    elif mode == "missing":
        ctx.write_samples({"image": image[200:]}, y[200:])
    elif mode == "rows":
        ctx.write_samples({"image": image[200:], "ids": ids[201:]}, y[200:])
    elif mode == "names":
        ctx.write_samples({"image": image[200:], "idz": ids[200:]}, y[200:])
    elif mode == "dtype":
        ctx.write_samples({"image": image[200:], "ids": ids[200:] - ids[200:] + 0.5}, y[200:])
    elif mode == "savedmodel":
        ctx.write_samples(test, y[200:])
        model.export(str(ctx.output_dir / "sm"), format="tf_saved_model", verbose=False)
        return None
    return model  # mode "none": no held-out rows at all
"""


def manifest(tmp_path: Path, mode: str, *, dataset: bool = False, **custom: Any) -> Path:
    train: dict[str, Any] = {
        "custom": {
            "entryPoint": "two_inputs:train",
            "code": "two_inputs.py",
            "env": {"MODE": mode},
            **custom,
        },
        "epochs": 3,
        "minAccuracy": 0.0,
    }
    if dataset:
        train["dataset"] = {"uri": "builtin://digits"}
    doc = {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "two"},
        "spec": {"model": {"train": train}},
    }
    (tmp_path / "two_inputs.py").write_text(textwrap.dedent(CODE))
    path = tmp_path / f"two-{mode}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_two_typed_inputs_without_a_dataset_then_bad_rows_keep_the_model(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    import keras
    import onnxruntime as ort

    out = tmp_path / "model"
    code, stdout, err = train_cli(manifest(tmp_path, "ok"), out)
    assert code == 0, err
    doc = read(out / "manifest.json")
    assert doc["inputs"] == [
        {"name": "image", "shape": [-1, 4, 4, 1], "datatype": "FP32"},
        {"name": "ids", "shape": [-1, 2], "datatype": "INT32"},
    ]
    assert doc["outputs"] == [{"name": "probabilities", "shape": [-1, 3], "datatype": "FP32"}]
    metrics = read(out / "metrics.json")
    assert sorted(k for k in ("train", "validation", "test") if k in metrics) == ["test"]  # only its rows
    assert metrics["onnxParity"]["rows"] == 40 and metrics["onnxParity"]["maxAbsDiff"] < 1e-5
    assert read(termination_log)["ok"] is True and "test accuracy" in stdout
    with np.load(out / "samples.npz") as samples:
        keys = {k: (samples[k].shape, samples[k].dtype) for k in samples.files}
        feeds = {"image": samples["x_test.image"], "ids": samples["x_test.ids"]}
    assert keys == {
        "x_test.image": ((40, 4, 4, 1), np.float32),
        "x_test.ids": ((40, 2), np.int32),
        "y_test": ((40,), np.int64),
        "x_calib.image": ((64, 4, 4, 1), np.float32),
        "x_calib.ids": ((64, 2), np.int32),
    }
    # the published ONNX answers the held-out rows as the user's Keras model does
    want = keras.models.load_model(out / "model.keras", compile=False).predict(feeds, verbose=0)
    got = ort.InferenceSession(str(out / "model.onnx")).run(["probabilities"], feeds)[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    digest = doc["digest"]

    failures = [
        (
            manifest(tmp_path, "none"),
            "custom training code wrote no held-out rows: the model has 2 inputs (image, ids), it must "
            "write $TRTFORGE_OUTPUT_DIR/samples.npz with x_test.image, x_test.ids and y_test "
            "(Context.write_samples)",
        ),
        (manifest(tmp_path, "missing"), "has no held-out rows for input 'ids' (expected x_test.ids; keys:"),
        (manifest(tmp_path, "rows"), "different row counts (x_test.image 40, x_test.ids 39, y_test 40)"),
        (manifest(tmp_path, "names"), "x_test.idz names no input of the model (its inputs: image, ids)"),
        (
            manifest(tmp_path, "dtype"),
            "float64 values such as 0.5, which the model input 'ids' (int32, shape [-1, 2]) cannot take "
            "unchanged; give int32 rows",
        ),
        (
            manifest(tmp_path, "ok", dataset=True),
            "has 2 inputs (image, ids), but spec.model.train.dataset's rows feed a model of one input: drop "
            "the dataset",
        ),
    ]
    for path, message in failures:
        code, _, err = train_cli(path, out, "--overwrite")
        assert code == 9 and message in err, err
        report = read(termination_log)
        assert report["ok"] is False and report["customCode"] == "badSamples", report
        assert read(out / "manifest.json")["digest"] == digest  # the stored model is kept
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_a_savedmodel_of_two_inputs_from_a_command(train_cli: TrainCli, tmp_path: Path) -> None:
    path = manifest(tmp_path, "savedmodel", outputName="probabilities")
    doc = yaml.safe_load(path.read_text())
    custom = doc["spec"]["model"]["train"]["custom"]
    del custom["entryPoint"]
    custom["command"] = [sys.executable, "-c", "import two_inputs; from trtforge_runtime.train.custom "
                         "import Context; two_inputs.train(Context.from_env())"]  # fmt: skip
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "model"
    code, _, err = train_cli(path, out)
    assert code == 0, err
    manifest_json = read(out / "manifest.json")
    assert [(t["name"], t["datatype"]) for t in manifest_json["inputs"]] == [
        ("ids", "INT32"),
        ("image", "FP32"),
    ]
    assert [t["name"] for t in manifest_json["outputs"]] == ["probabilities"]
    assert (out / "saved_model" / "saved_model.pb").is_file() and not (
        out / "saved_model" / "samples.npz"
    ).exists()
    assert read(out / "metrics.json")["onnxParity"]["rows"] == 40


def test_inputname_cannot_rename_several_inputs(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    code, _, err = train_cli(manifest(tmp_path, "ok", inputName="x"), tmp_path / "model")
    assert code == 9
    assert (
        "spec.model.train.custom.inputName renames the only input, but the model in model.keras has 2" in err
    )
    assert read(termination_log)["customCode"] == "notAModel"
