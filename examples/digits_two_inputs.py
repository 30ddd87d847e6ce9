"""Custom training code for a functional Keras model with two inputs: an image and tabular features.

examples/digits-two-inputs.yaml runs it through spec.model.train.custom (entryPoint
`digits_two_inputs:train`); there is no dataset in the spec: like a TFJob, the code loads its own data.
It takes the digits of scikit-learn (bundled, no download) as 8x8x1 images, plus three tabular
features computed from each image (total ink, ink in the top half, ink in the left half); a small CNN
branch and a dense branch are concatenated into one softmax. Because the model has two inputs, the code
also hands trtforge the rows it never trained on, one array per input name (`ctx.write_samples`), for the
ONNX check, the quality gate, the conversion gate and int8 calibration.

    trtforge local examples/digits-two-inputs.yaml
"""

from __future__ import annotations

from typing import Any

import numpy as np


def features() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images [n, 8, 8, 1] in [0, 1], tabular [n, 3], labels [n])."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    ink = images.sum(axis=(1, 2, 3))
    tabular = np.stack(
        [ink / 64, images[:, :4].sum(axis=(1, 2, 3)) / 32, images[:, :, :4].sum(axis=(1, 2, 3)) / 32], axis=1
    ).astype(np.float32)
    return images, tabular, digits.target.astype(np.int64)


def build() -> Any:
    import keras

    image = keras.Input((8, 8, 1), name="image")
    tabular = keras.Input((3,), name="tabular")
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(image)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    t = keras.layers.Dense(8, activation="relu")(tabular)
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([x, t]))
    probabilities = keras.layers.Dense(10, activation="softmax", name="probabilities")(h)
    return keras.Model([image, tabular], probabilities)


def split(n: int, seed: int, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) row indices."""
    order = np.random.default_rng(seed).permutation(n)
    cut = round((1 - test_fraction) * n)
    return order[:cut], order[cut:]


def train(ctx: Any) -> Any:
    """The entry point: train on 80% of the digits, hand over the other 20% as held-out rows, return
    the model (trtforge saves it as model.keras). `ctx` is a trtforge_runtime.train.custom.Context."""
    import keras

    keras.utils.set_random_seed(ctx.seed)
    images, tabular, y = features()
    train_idx, test_idx = split(len(y), ctx.seed)
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        {"image": images[train_idx], "tabular": tabular[train_idx]},
        y[train_idx],
        epochs=ctx.epochs,
        batch_size=ctx.batch_size,
        verbose=0,
    )
    ctx.write_samples(
        x_test={"image": images[test_idx], "tabular": tabular[test_idx]},
        y_test=y[test_idx],
        x_calib={"image": images[train_idx][:512], "tabular": tabular[train_idx][:512]},
    )
    return model
