"""A custom training loop for MultiWorkerMirroredStrategy, plus evaluation without collectives.

Keras 3's `fit()` does not work under MultiWorkerMirroredStrategy: its per-replica reduction of the
step's scalar logs fails ("Invalid reduction dimension 0 for input with 0 dimensions",
tensorflow/tensorflow#72388). Multi-worker training therefore runs this loop: the dataset is sharded
across workers by `experimental_distribute_dataset`, each replica computes its loss scaled to the global
batch, and the Keras optimizer all-reduces the gradients in `apply_gradients`. The progress callbacks
receive the same calls as under `fit()`.

`evaluate` runs the model eagerly on local data on every worker (the weights are identical after
training), so it needs no collective op and cannot hang when one worker finishes first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trtforge_runtime import tasks

EVAL_BATCH = 1024


def loss_function(loss: str) -> Callable[[Any, Any], Any]:
    """The per-sample Keras loss function of a spec loss name."""
    import keras

    fn: Callable[[Any, Any], Any] = keras.losses.get(loss)
    return fn


def rows(x: np.ndarray | dict[str, np.ndarray]) -> int:
    """The number of rows of one array, or of one array per input (all have the same)."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def predict(model: Any, x: np.ndarray | dict[str, np.ndarray], batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Inference outputs of a Keras model (or any function of a batch with a `training` keyword),
    computed eagerly in batches (no distribution, no collectives). `x` is one array, or one array per
    input name (a batch is then the same rows of each)."""

    def batch(i: int) -> Any:
        if isinstance(x, dict):
            return {name: a[i : i + batch_size] for name, a in x.items()}
        return x[i : i + batch_size]

    outputs = [np.asarray(model(batch(i), training=False)) for i in range(0, rows(x), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0,), dtype=np.float32)


def evaluate(
    model: Any, x: np.ndarray, y: np.ndarray, targets: np.ndarray, loss: str, task: str = tasks.CLASSIFICATION
) -> dict[str, float]:
    """Mean loss and the task's metrics (trtforge_runtime.tasks.scores) of `model` on (x, y)."""
    return score_outputs(predict(model, x), y, targets, loss, task)


def score_outputs(
    outputs: np.ndarray, y: np.ndarray, targets: np.ndarray, loss: str, task: str
) -> dict[str, float]:
    """Mean loss and the task's metrics of model outputs against labels `y` (and their loss targets)."""
    per_sample = np.asarray(loss_function(loss)(targets, outputs), dtype=np.float64)
    return {**tasks.scores(task, outputs, y), "loss": float(np.mean(per_sample))}


def fit_distributed(
    model: Any,
    strategy: Any,
    *,
    loss: str,
    x: np.ndarray,
    targets: np.ndarray,
    x_val: np.ndarray,
    targets_val: np.ndarray,
    y_val: np.ndarray,
    epochs: int,
    task: str = tasks.CLASSIFICATION,
    batch_size: int,
    seed: int,
    callbacks: Sequence[Any] = (),
) -> None:
    """Train `model` (built and given an optimizer under `strategy.scope()`) with a custom loop."""
    import tensorflow as tf

    optimizer = model.optimizer
    loss_fn = loss_function(loss)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, targets))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .with_options(options)
    )
    distributed = strategy.experimental_distribute_dataset(dataset)
    steps = math.ceil(len(x) / batch_size)

    def replica_step(xb: Any, yb: Any) -> Any:
        with tf.GradientTape() as tape:
            pred = model(xb, training=True)
            per_sample = loss_fn(yb, pred)
            step_loss = tf.nn.compute_average_loss(per_sample, global_batch_size=batch_size)
        grads = tape.gradient(step_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return step_loss

    @tf.function
    def train_step(xb: Any, yb: Any) -> Any:
        per_replica = strategy.run(replica_step, args=(xb, yb))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    params = {"epochs": epochs, "steps": steps, "verbose": 0}
    for cb in callbacks:
        cb.set_params(params)
        cb.set_model(model)
        cb.on_train_begin({})
    for epoch in range(epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch, {})
        losses = []
        for step, (xb, yb) in enumerate(distributed):
            losses.append(float(train_step(xb, yb)))
            for cb in callbacks:
                cb.on_train_batch_end(step, {"loss": losses[-1]})
        val_scores = evaluate(model, x_val, y_val, targets_val, loss, task)
        logs = {"loss": float(np.mean(losses)) if losses else 0.0}
        logs.update({f"val_{k}": v for k, v in val_scores.items()})
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
    for cb in callbacks:
        cb.on_train_end({})
