"""A user's own Keras training code, trained through `spec.model.train.custom` (examples/custom-train.yaml).

`trtforge train` runs `train(ctx)` in a child process: `ctx` holds the training and validation rows of
the manifest's dataset (the test rows are held back for trtforge's quality gate), the spec and the folder
to write to. Returning the model is enough; trtforge saves it as model.keras, exports it to ONNX, checks
the export against TensorFlow on the held-out rows and gates it like a declarative model.

The model uses a custom layer, registered with Keras so that trtforge can load the saved file.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from trtforge_runtime.train.custom import Context


@keras.saving.register_keras_serializable(package="custom_train")
class Standardize(keras.layers.Layer):
    """(x - mean) / std per feature, with the statistics of the training rows baked in as constants."""

    def __init__(self, mean: list[float], std: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]

    def call(self, x: Any) -> Any:
        mean = keras.ops.convert_to_tensor(np.asarray(self.mean, np.float32))
        std = keras.ops.convert_to_tensor(np.asarray(self.std, np.float32))
        return (x - mean) / std

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def build(mean: np.ndarray, std: np.ndarray, classes: int) -> keras.Model:
    """A functional model with named input and output: the names the V2 endpoint serves."""
    inputs = keras.Input(shape=mean.shape, name="pixels")
    x = Standardize(mean.tolist(), std.tolist(), name="standardize")(inputs)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(0.2, seed=1)(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="custom_digits")


def train(ctx: Context) -> keras.Model:
    keras.utils.set_random_seed(ctx.seed)
    mean = ctx.x_train.mean(axis=0)
    std = ctx.x_train.std(axis=0) + 1e-3
    model = build(mean, std, int(ctx.y_train.max()) + 1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        ctx.x_train,
        ctx.y_train,
        validation_data=(ctx.x_val, ctx.y_val),
        epochs=ctx.epochs,
        batch_size=ctx.batch_size,
        verbose=2,
    )
    return model
