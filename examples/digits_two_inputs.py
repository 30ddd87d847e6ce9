"""Train and save a functional Keras model with two inputs: an image and tabular features.

The digits of scikit-learn (bundled, no download) as 8x8x1 images, plus three tabular features computed
from each image (total ink, ink in the top half, ink in the left half); a small CNN branch and a dense
branch are concatenated into one softmax. The model is saved as a Keras 3 `.keras` file, which
examples/digits-two-inputs.yaml imports through spec.model.source (format keras):

    python examples/digits_two_inputs.py           # writes examples/digits-two-inputs.keras
    trtforge local examples/digits-two-inputs.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = Path(__file__).with_name("digits-two-inputs.keras")


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


def train(out: Path, epochs: int = 15, seed: int = 42) -> float:
    """Train on 80% of the digits, save the model to `out`; returns the accuracy on the other 20%."""
    import keras

    keras.utils.set_random_seed(seed)
    images, tabular, y = features()
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    train_idx, test_idx = order[:cut], order[cut:]
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit([images[train_idx], tabular[train_idx]], y[train_idx], epochs=epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate([images[test_idx], tabular[test_idx]], y[test_idx], verbose=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return float(accuracy)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    accuracy = train(args.output, args.epochs)
    print(f"wrote {args.output} (held-out accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()
