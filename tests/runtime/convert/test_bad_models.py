"""Models and data that do not match what the manifest declares, refused by `trtforge convert` before
any build: the error names the field, the input (and dimension) or the file, the exit code is the one
of the failure table, and neither the engine folder nor the build cache is created.

Cases already covered elsewhere are not repeated here: spec.engine.inputs against the model
(test_profiles.py), a model folder with a corrupt model.onnx (test_convert.py), a .keras file that is
not a zip archive and an unknown SavedModel signature (test_keras_source.py), a SavedModel folder
without saved_model.pb (test_convert.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import multi_io
import numpy as np
import pytest
import yaml
from trtforge_runtime.errors import ArtifactError, ConversionError, DatasetError


def _linear(path: Path, shape: list[Any], datatype: int | None = None) -> Path:
    """`x` [shape] (FP32 unless `datatype`, cast to float inside) -> softmax `y` [batch, 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.linspace(-1, 1, shape[-1] * 3, dtype=np.float32).reshape(-1, 3), "w")
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT)]
    nodes += [
        helper.make_node("MatMul", ["xf", "w"], ["z"]),
        helper.make_node("Softmax", ["z"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", datatype or TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 3])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _spec(tmp_path: Path, source: dict[str, Any], **engine: Any) -> Path:
    doc = {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "byom"},
        "spec": {
            "model": {"source": source},
            "engine": {
                "backend": "onnxruntime",
                "precision": "fp32",
                "batch": {"min": 1, "opt": 4, "max": 8},
                "computeCapabilities": ["8.9"],
                **engine,
            },
        },
    }
    path = tmp_path / "byom.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _refused(tmp_path: Path, tools: Any, capsys: Any, spec: Path, error: type[Exception], *words: str) -> str:
    code = tools.run(spec, None, tmp_path / "engine", tmp_path / "cache")
    err: str = capsys.readouterr().err
    assert code == error.exit_code, err  # type: ignore[attr-defined]
    for word in words:
        assert word in err, err
    assert not (tmp_path / "engine").exists() and not (tmp_path / "cache").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    return err


def test_input_name_that_the_model_does_not_have(tmp_path: Path, tools: Any, capsys: Any) -> None:
    model = multi_io.build(tmp_path / "m.onnx")
    spec = _spec(tmp_path, {"uri": str(model), "format": "onnx", "inputName": "pixels"})
    _refused(
        tmp_path,
        tools,
        capsys,
        spec,
        ArtifactError,
        "spec.model.source.inputName 'pixels' is not an input of the model",
        "['image', 'tabular', 'site', 'count', 'flag']",
    )


def test_output_name_that_the_model_does_not_have(tmp_path: Path, tools: Any, capsys: Any) -> None:
    model = multi_io.build(tmp_path / "m.onnx")
    spec = _spec(tmp_path, {"uri": str(model), "format": "onnx", "outputName": "classes"})
    _refused(
        tmp_path,
        tools,
        capsys,
        spec,
        ArtifactError,
        "spec.model.source.outputName 'classes' is not an output of the model",
        "['probabilities', 'score']",
    )


def test_rows_of_the_wrong_width_name_the_input(tmp_path: Path, tools: Any, capsys: Any) -> None:
    model = _linear(tmp_path / "m.onnx", ["batch", 10])
    spec = _spec(tmp_path, {"uri": str(model), "format": "onnx", "dataset": {"uri": "builtin://digits"}})
    _refused(
        tmp_path,
        tools,
        capsys,
        spec,
        DatasetError,
        "gate samples (builtin://digits) have shape [360, 64] for input 'x'",
        "but the model input 'x' wants [-1, 10]",
    )


def test_float_rows_for_an_integer_input_are_refused_not_truncated(
    tmp_path: Path, tools: Any, capsys: Any
) -> None:
    """iris's measurements (5.1, 3.5, ...) fed to an INT64 input were cast to 5, 3, ... and the gate passed
    on rows the model never sees; now the rows are refused, naming the input and a value."""
    from onnx import TensorProto

    model = _linear(tmp_path / "m.onnx", ["batch", 4], TensorProto.INT64)
    spec = _spec(tmp_path, {"uri": str(model), "format": "onnx", "dataset": {"uri": "builtin://iris"}})
    _refused(
        tmp_path,
        tools,
        capsys,
        spec,
        DatasetError,
        "gate samples (builtin://iris) for input 'x' hold",
        "(float32), but the model input 'x' is INT64: give integers that fit INT64",
    )


def test_integral_float_rows_feed_an_integer_input(tmp_path: Path, tools: Any) -> None:
    """A CSV holds integer ids as floats: rows whose values are whole numbers are cast, not refused."""
    from onnx import TensorProto

    model = _linear(tmp_path / "m.onnx", ["batch", 4], TensorProto.INT64)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "ids.npz", x=rng.integers(0, 9, (60, 4)).astype(np.float32), y=rng.integers(0, 3, 60))
    spec = _spec(
        tmp_path, {"uri": str(model), "format": "onnx", "dataset": {"uri": str(tmp_path / "ids.npz")}}
    )
    assert tools.run(spec, None, tmp_path / "engine", tmp_path / "cache") == 0
    assert tools.read(tmp_path / "engine")["gate"]["data"] == "test"


def test_a_fixed_batch_dimension_is_refused_before_any_build(tmp_path: Path, tools: Any, capsys: Any) -> None:
    model = _linear(tmp_path / "m.onnx", [1, 10])
    spec = _spec(tmp_path, {"uri": str(model), "format": "onnx"})
    _refused(
        tmp_path,
        tools,
        capsys,
        spec,
        ConversionError,
        "model input 'x' has a fixed batch dimension 1 (shape [1, 10])",
    )


def test_a_truncated_onnx_source_names_the_file(tmp_path: Path, tools: Any, capsys: Any) -> None:
    data = multi_io.build(tmp_path / "whole.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    spec = _spec(tmp_path, {"uri": str(tmp_path / "cut.onnx"), "format": "onnx"})
    _refused(
        tmp_path, tools, capsys, spec, ArtifactError, f"model {tmp_path / 'cut.onnx'} is not an ONNX model"
    )


@pytest.mark.slow  # tf2onnx imports TensorFlow in a child process
def test_a_savedmodel_whose_saved_model_pb_is_corrupt_names_the_file(
    tmp_path: Path, tools: Any, capsys: Any
) -> None:
    saved = tmp_path / "exported"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"\x08\x01junk that is no protobuf of a SavedModel")
    spec = _spec(tmp_path, {"uri": str(saved), "format": "savedmodel"})
    _refused(
        tmp_path,
        tools,
        capsys,
        spec,
        ArtifactError,
        f"SavedModel {saved}: {saved / 'saved_model.pb'} is corrupt or not a SavedModel",
    )


CUSTOM_LAYER = """
import keras


@keras.saving.register_keras_serializable(package="mine")
class Double(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
"""

SAVE_WITH_CUSTOM_LAYER = """
import keras
from mylayers import Double

keras.utils.set_random_seed(0)
features = keras.Input((4,), name="features")
probabilities = keras.layers.Dense(3, activation="softmax", name="probabilities")(Double()(features))
keras.Model(features, probabilities).save("custom.keras")
"""


@pytest.mark.slow  # Keras saves the model in a child process, and the conversion loads it in another
def test_a_keras_model_with_a_custom_layer_finds_its_module_or_names_it(
    tmp_path: Path, tools: Any, capsys: Any
) -> None:
    """The registered layer's module, next to the .keras file, is imported before loading (it was not:
    every model with a custom layer failed with Keras's `Could not locate class 'Double'`); without the
    module the error names it and where to put it."""
    import subprocess
    import sys

    models = tmp_path / "models"
    models.mkdir()
    (models / "mylayers.py").write_text(CUSTOM_LAYER)
    subprocess.run(
        [sys.executable, "-c", SAVE_WITH_CUSTOM_LAYER], cwd=models, check=True, capture_output=True
    )
    spec = _spec(tmp_path, {"uri": str(models / "custom.keras"), "format": "keras"})
    assert tools.run(spec, None, tmp_path / "engine", tmp_path / "cache") == 0, capsys.readouterr().err
    doc = tools.read(tmp_path / "engine")
    assert [t["name"] for t in doc["model"]["inputs"]] == ["features"]
    assert [t["name"] for t in doc["model"]["outputs"]] == ["probabilities"]

    (models / "mylayers.py").unlink()
    (tmp_path / "cache").rename(tmp_path / "cache-before")
    (tmp_path / "engine").rename(tmp_path / "engine-before")
    _refused(
        tmp_path,
        tools,
        capsys,
        spec,
        ArtifactError,
        f"cannot load Keras model {models / 'custom.keras'}: its custom objects are defined in module "
        "'mylayers', which cannot be imported (No module named 'mylayers'); put mylayers.py next to the "
        ".keras file or on PYTHONPATH",
    )
