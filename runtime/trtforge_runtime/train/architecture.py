"""Turning spec.model.train.architecture into a Keras functional model with named tensors.

The input is a `keras.Input` named `inputName` (ONNX input names otherwise change from run to run), the
feature scaling of `dataset.normalize` is folded in as the first layer (its constants come from the
training split), every spec layer gets a stable name (`l03_dense`) so graphs are identical across runs,
and the last layer is named `outputName`. A layer that cannot be built or does not fit the tensor it
receives is rejected with its index and type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from trtforge_runtime import tasks
from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec.model import Architecture, Layer, Loss

LAYERS_PATH = "spec.model.train.architecture.layers"


def _pair(value: list[int] | None, default: tuple[int, int] | None) -> tuple[int, int] | None:
    return (int(value[0]), int(value[1])) if value else default


def _dense(layer: Layer, seed: int, name: str) -> keras.layers.Layer:
    return keras.layers.Dense(
        int(layer.units or 0),
        activation=str(layer.activation or "linear"),
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name=name,
    )


def _dropout(layer: Layer, seed: int, name: str) -> keras.layers.Layer:
    return keras.layers.Dropout(float(layer.rate or 0.0), seed=seed, name=name)


def _batch_norm(layer: Layer, seed: int, name: str) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(
        momentum=layer.momentum if layer.momentum is not None else 0.99,
        epsilon=layer.epsilon if layer.epsilon is not None else 1e-3,
        name=name,
    )


def _flatten(layer: Layer, seed: int, name: str) -> keras.layers.Layer:
    return keras.layers.Flatten(name=name)


def _reshape(layer: Layer, seed: int, name: str) -> keras.layers.Layer:
    return keras.layers.Reshape(tuple(int(d) for d in layer.target_shape or ()), name=name)


def _conv2d(layer: Layer, seed: int, name: str) -> keras.layers.Layer:
    return keras.layers.Conv2D(
        int(layer.filters or 0),
        _pair(layer.kernel_size, None),
        strides=_pair(layer.strides, (1, 1)),
        padding=str(layer.padding or "valid"),
        activation=str(layer.activation or "linear"),
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name=name,
    )


def _max_pool(layer: Layer, seed: int, name: str) -> keras.layers.Layer:
    return keras.layers.MaxPooling2D(
        pool_size=_pair(layer.pool_size, (2, 2)),
        strides=_pair(layer.strides, None),
        padding=str(layer.padding or "valid"),
        name=name,
    )


def _avg_pool(layer: Layer, seed: int, name: str) -> keras.layers.Layer:
    return keras.layers.AveragePooling2D(
        pool_size=_pair(layer.pool_size, (2, 2)),
        strides=_pair(layer.strides, None),
        padding=str(layer.padding or "valid"),
        name=name,
    )


def _global_avg_pool(layer: Layer, seed: int, name: str) -> keras.layers.Layer:
    return keras.layers.GlobalAveragePooling2D(name=name)


BUILDERS: dict[str, Callable[[Layer, int, str], keras.layers.Layer]] = {
    "Dense": _dense,
    "Dropout": _dropout,
    "BatchNormalization": _batch_norm,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Conv2D": _conv2d,
    "MaxPooling2D": _max_pool,
    "AveragePooling2D": _avg_pool,
    "GlobalAveragePooling2D": _global_avg_pool,
}


def normalization_layer(mode: str, x_train: np.ndarray) -> keras.layers.Layer | None:
    """The feature scaling of `dataset.normalize`, with constants from the training split only.

    max: divide by the largest absolute training value; standard: subtract the per-feature (last axis)
    mean and divide by the standard deviation (1 for constant features); none: no layer. Both are a
    `Rescaling` layer with NumPy constants: they become graph constants (Keras's `Normalization` keeps
    eager tensors that tf2onnx would turn into extra graph inputs).
    """
    if mode == "none":
        return None
    x = x_train.astype(np.float64)
    if mode == "max":
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        return keras.layers.Rescaling(1.0 / peak if peak > 0 else 1.0, name="normalize")
    if mode == "standard":
        axes = tuple(range(x.ndim - 1))
        mean = x.mean(axis=axes)
        std = x.std(axis=axes)
        std = np.where(std < 1e-6, 1.0, std)
        scale = (1.0 / std).astype(np.float32)
        return keras.layers.Rescaling(scale, offset=(-mean * scale).astype(np.float32), name="normalize")
    raise ManifestError(f"spec.model.train.dataset.normalize: unknown mode {mode!r}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def build_model(
    arch: Architecture,
    *,
    input_shape: tuple[int, ...],
    normalizer: keras.layers.Layer | None,
    seed: int,
    name: str = "trtforge",
) -> keras.Model:
    """A functional model: named input -> normalizer -> spec layers (last one named outputName)."""
    if arch.input_name == arch.output_name:
        raise ManifestError("spec.model.train.architecture: inputName and outputName must differ")
    inputs = keras.Input(shape=input_shape, name=arch.input_name, dtype="float32")
    x: Any = normalizer(inputs) if normalizer is not None else inputs
    last = len(arch.layers) - 1
    for i, spec_layer in enumerate(arch.layers):
        kind = str(spec_layer.type)
        where = f"{LAYERS_PATH}[{i}] ({kind})"
        builder = BUILDERS.get(kind)
        if builder is None:
            raise ManifestError(
                f"{where}: unknown layer type {kind!r}; supported: {', '.join(sorted(BUILDERS))}"
            )
        try:
            layer_name = arch.output_name if i == last else f"l{i:02d}_{kind.lower()}"
            layer = builder(spec_layer, seed + i, layer_name)
            x = layer(x)
        except (ValueError, TypeError) as exc:
            shape = tuple(getattr(x, "shape", ()))
            raise ManifestError(
                f"{where}: cannot be applied to an input of shape {shape}: {_first_line(exc)}"
            ) from None
    return keras.Model(inputs=inputs, outputs=x, name=name)


def check_output(model: keras.Model, loss: str, y: np.ndarray, task: str = tasks.CLASSIFICATION) -> int:
    """The model's output width; refuses outputs that cannot fit the labels `y` of `task` under `loss`."""
    shape = tuple(model.output.shape)
    where = f"{LAYERS_PATH}[-1]"
    if len(shape) != 2:
        raise ManifestError(
            f"{where}: the model's output has shape {shape}; a {task} model needs (batch, units) "
            "(add Flatten and a Dense layer)"
        )
    width = int(shape[1])
    need = tasks.output_width(task, y)
    if task == tasks.REGRESSION:
        if width != need:
            raise ManifestError(
                f"{where}: regression on {need} target value(s) per row needs {need} output unit(s) "
                f"with a linear activation; the model has {width}"
            )
        return width
    if task == tasks.MULTILABEL:
        if width != need:
            raise ManifestError(
                f"{where}: the dataset has {need} labels; the last Dense layer needs units: {need} "
                f"and activation: sigmoid (the model has {width} outputs)"
            )
        return width
    if loss == Loss.BINARY_CROSSENTROPY:
        if width != 1 or need > 2:
            raise ManifestError(
                f"{where}: binary_crossentropy needs one output unit and labels 0/1; the model has {width} "
                f"outputs and the dataset {need} classes"
            )
        return 2
    if width < need:
        raise ManifestError(
            f"{where}: the model has {width} outputs but the dataset has {need} classes "
            f"(labels 0..{need - 1}); set the last Dense layer's units to at least {need}"
        )
    return width


def check_last_activation(arch: Architecture, task: str) -> None:
    """Multilabel decides each label at 0.5 on a probability: the last layer must be a sigmoid."""
    last = arch.layers[-1]
    if task == tasks.MULTILABEL and str(last.activation or "linear") != "sigmoid":
        raise ManifestError(
            f"{LAYERS_PATH}[-1]: a multilabel model needs activation: sigmoid on its last layer "
            f"(one probability per label), got {last.activation or 'linear'}"
        )
    if task == tasks.REGRESSION and str(last.activation or "linear") in ("softmax", "sigmoid"):
        raise ManifestError(
            f"{LAYERS_PATH}[-1]: a regression model predicts values; {last.activation} squashes them "
            "(use activation: linear)"
        )


def targets(y: np.ndarray, loss: str, width: int, task: str = tasks.CLASSIFICATION) -> np.ndarray:
    """Labels in the form `loss` expects: class indices, one-hot rows, a 0/1 column, or float values."""
    if task != tasks.CLASSIFICATION:
        return y.astype(np.float32).reshape(len(y), -1)
    if loss == Loss.SPARSE_CATEGORICAL_CROSSENTROPY:
        return y
    if loss == Loss.BINARY_CROSSENTROPY:
        return y.astype(np.float32).reshape(-1, 1)
    return np.eye(width, dtype=np.float32)[y]


def keras_metric(task: str) -> str:
    """The metric Keras reports per epoch (progress lines): accuracy, MAE, or per-label accuracy."""
    return {tasks.REGRESSION: "mae", tasks.MULTILABEL: "binary_accuracy"}.get(task, "accuracy")


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Class per row: argmax, or a 0.5 threshold for a single-unit output."""
    return tasks.predicted_classes(outputs)


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    classes: dict[str, type[keras.optimizers.Optimizer]] = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    if name not in classes:
        raise ManifestError(f"spec.model.train.optimizer: unknown optimizer {name!r}")
    return classes[name](learning_rate=learning_rate)
