"""Spec layers -> Keras model: every layer type, named tensors, folded normalization, clear rejections."""

from __future__ import annotations

import io
from typing import Any

import keras
import numpy as np
import pytest
from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec.model import Architecture, Layer
from trtforge_runtime.train import architecture, progress


def arch(layers: list[dict[str, Any]], **kw: Any) -> Architecture:
    return Architecture.model_validate({"layers": layers, **kw})


def test_every_layer_type_builds_with_stable_names() -> None:
    a = arch(
        [
            {"type": "Reshape", "targetShape": [8, 8, 1]},
            {"type": "Conv2D", "filters": 4, "kernelSize": [3, 3], "padding": "same", "activation": "relu"},
            {"type": "BatchNormalization", "momentum": 0.9},
            {"type": "MaxPooling2D", "poolSize": [2, 2]},
            {"type": "AveragePooling2D", "poolSize": [2, 2], "strides": [1, 1]},
            {"type": "Conv2D", "filters": 4, "kernelSize": [1, 1]},
            {"type": "GlobalAveragePooling2D"},
            {"type": "Dropout", "rate": 0.1},
            {"type": "Flatten"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
        inputName="pixels",
        outputName="probabilities",
    )
    model = architecture.build_model(a, input_shape=(64,), normalizer=None, seed=1)
    assert model.input.name == "pixels" or model.inputs[0].name == "pixels"
    assert [layer.name for layer in model.layers] == [
        "pixels",
        "l00_reshape",
        "l01_conv2d",
        "l02_batchnormalization",
        "l03_maxpooling2d",
        "l04_averagepooling2d",
        "l05_conv2d",
        "l06_globalaveragepooling2d",
        "l07_dropout",
        "l08_flatten",
        "probabilities",
    ]
    assert tuple(model.output.shape) == (None, 10)
    out = model.predict(np.zeros((3, 64), dtype=np.float32), verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_same_seed_same_initial_weights() -> None:
    a = arch([{"type": "Dense", "units": 5}, {"type": "Dense", "units": 3}])
    w1 = architecture.build_model(a, input_shape=(4,), normalizer=None, seed=3).get_weights()
    w2 = architecture.build_model(a, input_shape=(4,), normalizer=None, seed=3).get_weights()
    w3 = architecture.build_model(a, input_shape=(4,), normalizer=None, seed=4).get_weights()
    for x, y in zip(w1, w2, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(w1[0], w3[0])


def test_a_layer_that_does_not_fit_its_input_names_index_and_type() -> None:
    a = arch([{"type": "Dense", "units": 8}, {"type": "Conv2D", "filters": 2, "kernelSize": [3, 3]}])
    with pytest.raises(ManifestError) as err:
        architecture.build_model(a, input_shape=(64,), normalizer=None, seed=0)
    msg = str(err.value)
    assert msg.startswith("spec.model.train.architecture.layers[1] (Conv2D): cannot be applied")
    assert "(None, 8)" in msg


def test_a_reshape_to_the_wrong_size_names_index_and_type() -> None:
    a = arch([{"type": "Reshape", "targetShape": [7, 7]}, {"type": "Dense", "units": 2}])
    with pytest.raises(ManifestError, match=r"layers\[0\] \(Reshape\)"):
        architecture.build_model(a, input_shape=(64,), normalizer=None, seed=0)


def test_unknown_layer_type_names_index_and_type() -> None:
    bogus = Layer.model_construct(type="LSTM", units=4)
    a = Architecture.model_construct(
        input_name="input", output_name="output", input_shape=None, layers=[Layer(type="Flatten"), bogus]
    )
    with pytest.raises(ManifestError, match=r"layers\[1\] \(LSTM\): unknown layer type 'LSTM'; supported: "):
        architecture.build_model(a, input_shape=(4,), normalizer=None, seed=0)


def test_the_manifest_schema_rejects_unknown_types_and_misplaced_fields() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="type"):
        arch([{"type": "LSTM", "units": 4}])
    with pytest.raises(ValidationError, match="rate does not apply to a Dense layer"):
        arch([{"type": "Dense", "units": 4, "rate": 0.5}])


def test_same_input_and_output_name_is_refused() -> None:
    a = arch([{"type": "Dense", "units": 2}], inputName="t", outputName="t")
    with pytest.raises(ManifestError, match="inputName and outputName must differ"):
        architecture.build_model(a, input_shape=(4,), normalizer=None, seed=0)


def test_output_checks() -> None:
    m4 = architecture.build_model(
        arch([{"type": "Dense", "units": 4}]), input_shape=(3,), normalizer=None, seed=0
    )
    assert architecture.check_output(m4, "sparse_categorical_crossentropy", np.arange(3)) == 4
    with pytest.raises(ManifestError, match=r"4 outputs but the dataset has 10 classes \(labels 0..9\)"):
        architecture.check_output(m4, "sparse_categorical_crossentropy", np.arange(10))
    with pytest.raises(ManifestError, match="binary_crossentropy needs one output unit"):
        architecture.check_output(m4, "binary_crossentropy", np.arange(2))
    m3d = architecture.build_model(
        arch([{"type": "Reshape", "targetShape": [2, 2]}]), input_shape=(4,), normalizer=None, seed=0
    )
    with pytest.raises(ManifestError, match=r"output has shape \(None, 2, 2\).*add Flatten"):
        architecture.check_output(m3d, "sparse_categorical_crossentropy", np.arange(2))
    # regression: one unit per target value; multilabel: one unit per label
    assert (
        architecture.check_output(m4, "mean_squared_error", np.zeros((5, 4), np.float32), "regression") == 4
    )
    with pytest.raises(ManifestError, match=r"regression on 1 target value\(s\) per row needs 1 output unit"):
        architecture.check_output(m4, "mean_squared_error", np.zeros(5, np.float32), "regression")
    assert architecture.check_output(m4, "binary_crossentropy", np.zeros((5, 4), np.int64), "multilabel") == 4
    with pytest.raises(ManifestError, match="the dataset has 3 labels; the last Dense layer needs units: 3"):
        architecture.check_output(m4, "binary_crossentropy", np.zeros((5, 3), np.int64), "multilabel")


def test_last_activation_fits_the_task() -> None:
    sig = arch([{"type": "Dense", "units": 3, "activation": "sigmoid"}])
    lin = arch([{"type": "Dense", "units": 3}])
    architecture.check_last_activation(sig, "multilabel")
    architecture.check_last_activation(lin, "regression")
    with pytest.raises(ManifestError, match=r"multilabel model needs activation: sigmoid.*got linear"):
        architecture.check_last_activation(lin, "multilabel")
    with pytest.raises(ManifestError, match="regression model predicts values; sigmoid squashes them"):
        architecture.check_last_activation(sig, "regression")


def test_targets_and_predicted_classes() -> None:
    y = np.array([0, 2, 1])
    assert architecture.targets(y, "sparse_categorical_crossentropy", 3) is y
    np.testing.assert_array_equal(architecture.targets(y, "categorical_crossentropy", 3), np.eye(3)[y])
    assert architecture.targets(np.array([0, 1]), "binary_crossentropy", 1).shape == (2, 1)
    values = architecture.targets(np.array([1.5, -2.0]), "huber", 1, "regression")
    assert values.dtype == np.float32 and values.shape == (2, 1)
    labels = architecture.targets(np.array([[0, 1], [1, 1]]), "binary_crossentropy", 2, "multilabel")
    np.testing.assert_array_equal(labels, [[0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(architecture.predicted_classes(np.array([[0.1, 0.9], [0.8, 0.2]])), [1, 0])
    np.testing.assert_array_equal(architecture.predicted_classes(np.array([[0.7], [0.2]])), [1, 0])


def test_normalization_constants_come_from_the_training_split() -> None:
    x = np.array([[0.0, 2.0], [4.0, -8.0]], dtype=np.float32)
    assert architecture.normalization_layer("none", x) is None
    scaled = architecture.normalization_layer("max", x)
    assert scaled is not None
    np.testing.assert_allclose(np.asarray(scaled(x)), x / 8.0)
    std = architecture.normalization_layer("standard", x)
    assert std is not None
    out = np.asarray(std(x))
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-5)
    constant = np.array([[1.0, 3.0], [1.0, 5.0]], dtype=np.float32)
    std_const = architecture.normalization_layer("standard", constant)
    assert std_const is not None
    np.testing.assert_allclose(np.asarray(std_const(constant)), [[0.0, -1.0], [0.0, 1.0]], atol=1e-6)
    zero = architecture.normalization_layer("max", np.zeros((2, 2), dtype=np.float32))
    assert zero is not None and float(zero.scale) == 1.0


def test_optimizers() -> None:
    for name, cls in (("adam", keras.optimizers.Adam), ("sgd", keras.optimizers.SGD)):
        opt = architecture.make_optimizer(name, 0.01)
        assert isinstance(opt, cls) and float(opt.learning_rate) == pytest.approx(0.01)
    with pytest.raises(ManifestError, match="unknown optimizer 'lion'"):
        architecture.make_optimizer("lion", 0.01)


# ------------------------------------------------------------------------------------------- progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_mode_follows_the_terminal() -> None:
    assert progress.resolve_mode("auto", Tty()) == "bar"
    assert progress.resolve_mode("auto", io.StringIO()) == "lines"
    assert progress.resolve_mode("none", Tty()) == "none"
    assert progress.callbacks("none", 3, io.StringIO()) == []


def _fit(callbacks: list[keras.callbacks.Callback], epochs: int = 3) -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.random.default_rng(0).random((20, 2)), np.arange(20) % 2
    model.fit(x, y, validation_data=(x, y), epochs=epochs, batch_size=5, verbose=0, callbacks=callbacks)


def test_lines_mode_prints_one_line_per_epoch() -> None:
    stream = io.StringIO()
    _fit(progress.callbacks("lines", 3, stream))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {i}/3 accuracy=")
        assert " loss=" in line and " val_accuracy=" in line and " val_loss=" in line and line.endswith("s)")
    assert "\r" not in stream.getvalue()


def test_bar_mode_draws_a_bar_over_all_batches() -> None:
    stream = Tty()
    _fit(progress.callbacks("auto", 3, stream))
    text = stream.getvalue()
    assert "\r" in text and "epoch 3/3" in text and "12/12" in text and "val_accuracy=" in text


def test_bar_mode_on_a_pseudo_terminal_without_a_size() -> None:
    """A pty may report 0 x 0 (e.g. under `script` or a CI runner); tqdm would then draw nothing."""
    import os
    import pty
    import threading

    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with os.fdopen(slave, "w") as stream:
        assert os.get_terminal_size(stream.fileno()).columns == 0
        assert progress.resolve_mode("auto", stream) == "bar"
        _fit(progress.callbacks("auto", 2, stream), epochs=2)
    reader.join(timeout=5)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert "epoch 2/2" in text and "8/8" in text and "batch/s" in text
