"""spec.model.source of format keras (a Keras 3 .keras file) and a SavedModel's signature by name.

A functional Keras model with two inputs (an 8x8x1 image and 3 tabular features) and two outputs
(class probabilities and a score) converts with its own tensor names, and the converted network gives
what Keras predicts; a SavedModel's serving signature is chosen by name, an unknown one is refused
naming it, and a file that is no Keras model is refused naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """(.keras file, SavedModel folder from model.export, the rows and Keras's outputs for them)."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    tabular = keras.Input((3,), name="tabular")
    x = keras.layers.Conv2D(4, 3, activation="relu")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([x, tabular]))
    probabilities = keras.layers.Dense(3, activation="softmax", name="probabilities")(h)
    score = keras.layers.Dense(1, name="score")(h)
    model = keras.Model([image, tabular], [probabilities, score])
    root = tmp_path_factory.mktemp("keras")
    model.save(root / "two.keras")
    model.export(str(root / "saved"), format="tf_saved_model", verbose=False)
    rng = np.random.default_rng(0)
    rows = {"image": rng.random((16, 8, 8, 1), np.float32), "tabular": rng.random((16, 3), np.float32)}
    p, s = model.predict([rows["image"], rows["tabular"]], verbose=0)
    return root / "two.keras", root / "saved", (rows, {"probabilities": p, "score": s})


def _spec(tmp_path: Path, tools: Any, source: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    engine = {"backend": "onnxruntime", "precision": "fp32"}
    path.write_text(yaml.safe_dump(tools.manifest(engine, {"source": source}, name="two")))
    return path


def test_keras_file_with_two_inputs_and_two_outputs(
    tmp_path: Path, tools: Any, keras_model: tuple[Path, Path, Any]
) -> None:
    import onnxruntime as ort

    keras_file, _, (rows, want) = keras_model
    spec = _spec(tmp_path, tools, {"uri": str(keras_file), "format": "keras"})
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert [(t["name"], t["shape"]) for t in doc["model"]["inputs"]] == [
        ("image", [-1, 8, 8, 1]),
        ("tabular", [-1, 3]),
    ]
    assert [t["name"] for t in doc["model"]["outputs"]] == ["probabilities", "score"]
    sess = ort.InferenceSession(str(tmp_path / "e" / doc["onnxruntime"]["file"]))
    got = dict(zip(["probabilities", "score"], sess.run(["probabilities", "score"], rows), strict=True))
    for name in ("probabilities", "score"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_savedmodel_signature_chosen_by_name(
    tmp_path: Path, tools: Any, keras_model: tuple[Path, Path, Any], capsys: Any
) -> None:
    _, saved, _ = keras_model
    spec = _spec(tmp_path, tools, {"uri": str(saved), "format": "savedmodel", "signature": "serve"})
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    assert {t["name"] for t in tools.read(tmp_path / "e")["model"]["inputs"]} == {"image", "tabular"}
    spec = _spec(tmp_path, tools, {"uri": str(saved), "format": "savedmodel", "signature": "nope"})
    assert tools.run(spec, None, tmp_path / "f", tmp_path / "c") != 0
    err = capsys.readouterr().err
    assert "spec.model.source.signature 'nope'" in err and "has no such serving signature" in err
    assert not (tmp_path / "f").exists()


def test_a_file_that_is_no_keras_model_is_refused_naming_it(tmp_path: Path, tools: Any, capsys: Any) -> None:
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"not a zip archive")
    spec = _spec(tmp_path, tools, {"uri": str(bad), "format": "keras"})
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") != 0
    assert f"cannot load Keras model {bad}" in capsys.readouterr().err


def test_a_savedmodel_converts_to_the_same_onnx_bytes_every_time(
    tmp_path: Path, keras_model: tuple[Path, Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """tf2onnx writes the SavedModel's folder into the graph's doc string (a .keras source is exported to
    a fresh folder each time) and numbers the nodes it inserts from a counter whose count varies with
    Python's hash seed: an unchanged source got another digest on every conversion, so `trtforge local`
    rebuilt its engine on each run and the engine cache never hit."""
    import shutil

    from trtforge_runtime.convert.source import savedmodel_to_onnx

    _, saved, _ = keras_model
    converted = []
    for seed in ("0", "1"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        folder = shutil.copytree(saved, tmp_path / f"work{seed}" / "keras-savedmodel")
        converted.append(savedmodel_to_onnx(folder, tmp_path / f"work{seed}" / "source.onnx").read_bytes())
    assert converted[0] == converted[1]
