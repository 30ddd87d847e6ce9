"""Training a spec.model.train section: seeds, strategy, data, model, fit, evaluation.

Determinism: `keras.utils.set_random_seed(seed)` (Python, NumPy, TensorFlow and Keras seeds),
`tf.config.experimental.enable_op_determinism()`, per-layer initializer/dropout seeds derived from the
spec seed, seeded splits and a fresh Keras session per run; so the same spec and data give the same
weights, and `export` turns the same weights into the same ONNX bytes.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TextIO

import numpy as np

from trtforge_runtime import tasks
from trtforge_runtime.errors import DatasetError, ManifestError
from trtforge_runtime.spec.model import TASK_LOSSES, Train
from trtforge_runtime.train.datasets import DatasetSettings, Splits, load_dataset
from trtforge_runtime.train.strategy import StrategyPlan, make_strategy, plan_strategy, visible_gpus

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """A trained model and what was measured about it."""

    model: Any  # keras.Model
    splits: Splits  # shaped as the model consumes them
    scores: dict[str, dict[str, float]]  # train/validation/test -> {loss, and the task's metrics}
    epochs: int
    seconds: float
    plan: StrategyPlan
    task: str = tasks.CLASSIFICATION

    @property
    def test_accuracy(self) -> float:
        """The test split's headline metric: accuracy, or R² for regression."""
        return self.scores["test"][tasks.headline(self.task)]


def quiet_tensorflow() -> None:
    """Keep TensorFlow's and tf2onnx's chatter out of the log unless the user asked for debug output."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not log.isEnabledFor(logging.DEBUG):
        for name in ("tensorflow", "tf2onnx", "absl"):
            logging.getLogger(name).setLevel(logging.WARNING)


def shape_for_model(splits: Splits, input_shape: list[int] | None, uri: str) -> Splits:
    """Reshape the feature rows to `architecture.inputShape` when it differs but holds as many values."""
    have = splits.feature_shape
    if input_shape is None or tuple(input_shape) == have:
        return splits
    want = tuple(int(d) for d in input_shape)
    if math.prod(want) != math.prod(have):
        raise DatasetError(
            f"dataset {uri}: rows have shape {have} ({math.prod(have)} values) but "
            f"spec.model.train.architecture.inputShape is {list(want)} ({math.prod(want)} values)"
        )

    def r(a: np.ndarray) -> np.ndarray:
        return a.reshape((len(a), *want))

    return replace(
        splits,
        x_train=r(splits.x_train),
        x_val=r(splits.x_val),
        x_test=r(splits.x_test),
    )


def train(
    spec: Train,
    *,
    progress: str = "auto",
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    dataset_settings: DatasetSettings | None = None,
    plan: StrategyPlan | None = None,
    task: str = tasks.CLASSIFICATION,
) -> TrainResult:
    """Train and evaluate `spec` (declarative: spec.architecture) for `task`; the model is returned."""
    if spec.architecture is None:
        raise ManifestError("spec.model.train.architecture is not set (custom training runs train.custom)")
    arch = spec.architecture
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    from trtforge_runtime.train import architecture
    from trtforge_runtime.train import progress as progress_mod

    architecture.check_last_activation(arch, task)

    env = os.environ if env is None else env
    # The strategy comes first: MultiWorkerMirroredStrategy must exist before the runtime starts.
    if plan is None:
        plan = plan_strategy(env, visible_gpus(), spec.workers)
    for note in plan.notes:
        log.warning("%s", note)
    strategy = make_strategy(plan)
    log.info("training with %s", plan.describe())

    keras.backend.clear_session()
    keras.utils.set_random_seed(spec.seed)
    tf.config.experimental.enable_op_determinism()

    assert spec.dataset is not None  # an architecture needs a dataset (spec rule)
    splits = load_dataset(spec.dataset, spec.seed, dataset_settings, task)
    splits = shape_for_model(splits, arch.input_shape, spec.dataset.uri)
    loss = str(spec.loss) if spec.loss is not None else TASK_LOSSES[task][0]
    log.info(
        "dataset %s: %d train, %d validation, %d test rows of shape %s, %s",
        spec.dataset.uri,
        len(splits.x_train),
        len(splits.x_val),
        len(splits.x_test),
        splits.feature_shape,
        tasks.describe_labels(task, splits.y_train),
    )

    with strategy.scope():
        normalizer = architecture.normalization_layer(spec.dataset.normalize, splits.x_train)
        model = architecture.build_model(
            arch,
            input_shape=splits.feature_shape,
            normalizer=normalizer,
            seed=spec.seed,
        )
        width = architecture.check_output(model, loss, splits.y_train, task)
        model.compile(
            optimizer=architecture.make_optimizer(str(spec.optimizer), spec.learning_rate),
            loss=loss,
            metrics=[architecture.keras_metric(task)],
        )

    def t(y: np.ndarray) -> np.ndarray:
        return architecture.targets(y, loss, width, task)

    callbacks = progress_mod.callbacks(progress, spec.epochs, stream or sys.stderr)
    start = time.perf_counter()
    _fit(model, strategy, plan, spec, splits, t, loss, task, callbacks)
    seconds = time.perf_counter() - start
    scores = _scores(model, splits, t, loss, task)
    return TrainResult(
        model=model, splits=splits, scores=scores, epochs=spec.epochs, seconds=seconds, plan=plan, task=task
    )


def _fit(
    model: Any,
    strategy: Any,
    plan: StrategyPlan,
    spec: Train,
    splits: Splits,
    t: Callable[[np.ndarray], np.ndarray],
    loss: str,
    task: str,
    callbacks: list[Any],
) -> None:
    """Keras `fit`, or the custom loop under MultiWorkerMirroredStrategy (see loop.py)."""
    from trtforge_runtime.train import loop

    if plan.kind == "multi_worker":
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
        loop.fit_distributed(
            model,
            strategy,
            loss=loss,
            x=splits.x_train,
            targets=t(splits.y_train),
            x_val=splits.x_val,
            targets_val=t(splits.y_val),
            y_val=splits.y_val,
            epochs=spec.epochs,
            task=task,
            batch_size=spec.batch_size,
            seed=spec.seed,
            callbacks=callbacks,
        )
        return
    model.fit(
        splits.x_train,
        t(splits.y_train),
        validation_data=(splits.x_val, t(splits.y_val)),
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )


def _scores(
    model: Any, splits: Splits, t: Callable[[np.ndarray], np.ndarray], loss: str, task: str
) -> dict[str, dict[str, float]]:
    """Loss and the task's metrics on every split."""
    from trtforge_runtime.train import loop

    scores: dict[str, dict[str, float]] = {}
    for split_name, x, y in (
        ("train", splits.x_train, splits.y_train),
        ("validation", splits.x_val, splits.y_val),
        ("test", splits.x_test, splits.y_test),
    ):
        result = loop.evaluate(model, x, y, t(y), loss, task)
        scores[split_name] = {k: round(v, 6) for k, v in result.items()}
    return scores
