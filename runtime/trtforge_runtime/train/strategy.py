"""Choosing the tf.distribute strategy: every visible GPU on one host, or a multi-worker cluster.

`plan_strategy` is a pure function of the environment (TF_CONFIG) and the visible GPU list, so both
distributed paths are unit-tested on a machine with one CPU; `make_strategy` turns the plan into the
TensorFlow object. The rules:

- TF_CONFIG set and naming more than one chief/worker task -> MultiWorkerMirroredStrategy (NCCL
  collectives when this worker sees GPUs, ring otherwise). The chief (task `chief`, else `worker` 0)
  publishes the artifacts; the other workers train in lockstep and write nothing.
- otherwise, one or more GPUs visible -> MirroredStrategy over all of them;
- otherwise the default strategy (CPU).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from trtforge_runtime.errors import TrainingError

StrategyKind = Literal["default", "mirrored", "multi_worker"]
TRAINING_TASK_TYPES = ("chief", "worker")


@dataclass(frozen=True)
class StrategyPlan:
    """What to run: the strategy kind and, for multi-worker, this process's place in the cluster."""

    kind: StrategyKind
    devices: tuple[str, ...] = ()
    num_workers: int = 1
    task_type: str | None = None
    task_index: int = 0
    is_chief: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        if self.kind == "multi_worker":
            where = f"{self.task_type} {self.task_index} of {self.num_workers} workers"
            return f"MultiWorkerMirroredStrategy ({where}{', chief' if self.is_chief else ''})"
        if self.kind == "mirrored":
            return f"MirroredStrategy over {len(self.devices)} GPU(s): {', '.join(self.devices)}"
        return "default strategy (CPU)" if not self.devices else "default strategy"


def parse_tf_config(raw: str) -> tuple[dict[str, list[str]], str, int]:
    """Validate TF_CONFIG; return (cluster, task type, task index)."""
    try:
        cfg: Any = json.loads(raw)
    except ValueError as exc:
        raise TrainingError(f"TF_CONFIG is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise TrainingError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = cfg.get("cluster"), cfg.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise TrainingError("TF_CONFIG.cluster must be a non-empty object of task type -> address list")
    for kind, addrs in cluster.items():
        if not isinstance(addrs, list) or not all(isinstance(a, str) and a for a in addrs):
            raise TrainingError(f"TF_CONFIG.cluster.{kind} must be a list of host:port strings")
    unsupported = sorted(set(cluster) - set(TRAINING_TASK_TYPES))
    if unsupported:
        raise TrainingError(
            f"TF_CONFIG.cluster has task types {unsupported}; only chief and worker are supported "
            "(MultiWorkerMirroredStrategy has no parameter servers or evaluators)"
        )
    if not isinstance(task, dict):
        raise TrainingError("TF_CONFIG.task must be an object with 'type' and 'index'")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise TrainingError(f"TF_CONFIG.task.type {task_type!r} is not a task type of TF_CONFIG.cluster")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task_type]):
        raise TrainingError(
            f"TF_CONFIG.task.index {index!r} is out of range for "
            f"{len(cluster[task_type])} {task_type} task(s)"
        )
    return cluster, str(task_type), index


def plan_strategy(env: Mapping[str, str], gpus: Sequence[str], workers: int = 1) -> StrategyPlan:
    """Decide the strategy from the environment and the visible GPUs (e.g. ['/device:GPU:0'])."""
    notes: list[str] = []
    raw = env.get("TF_CONFIG", "").strip()
    if raw:
        cluster, task_type, index = parse_tf_config(raw)
        n = sum(len(cluster.get(t, [])) for t in TRAINING_TASK_TYPES)
        if n > 1:
            chief = task_type == "chief" or ("chief" not in cluster and task_type == "worker" and index == 0)
            if workers != n:
                notes.append(f"spec.model.train.workers is {workers} but TF_CONFIG names {n} workers")
            return StrategyPlan(
                kind="multi_worker",
                devices=tuple(gpus),
                num_workers=n,
                task_type=task_type,
                task_index=index,
                is_chief=chief,
                notes=tuple(notes),
            )
        notes.append("TF_CONFIG names a single worker: training on this host only")
    elif workers > 1:
        notes.append(
            f"spec.model.train.workers is {workers} but TF_CONFIG is not set: training on this host only "
            "(the operator sets TF_CONFIG on each worker of the training Job)"
        )
    if gpus:
        return StrategyPlan(kind="mirrored", devices=tuple(gpus), notes=tuple(notes))
    return StrategyPlan(kind="default", notes=tuple(notes))


def visible_gpus() -> list[str]:
    """GPU device names TensorFlow sees (empty with tensorflow-cpu).

    Uses the physical device list, which does not initialise the TensorFlow runtime: a
    MultiWorkerMirroredStrategy can still be created afterwards.
    """
    import tensorflow as tf

    return [f"/gpu:{i}" for i, _ in enumerate(tf.config.list_physical_devices("GPU"))]


def make_strategy(plan: StrategyPlan) -> Any:
    """The tf.distribute strategy for `plan`. Create it before any other TensorFlow work."""
    import tensorflow as tf

    if plan.kind == "multi_worker":
        impl = (
            tf.distribute.experimental.CommunicationImplementation.NCCL
            if plan.devices
            else tf.distribute.experimental.CommunicationImplementation.RING
        )
        options = tf.distribute.experimental.CommunicationOptions(implementation=impl)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if plan.kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(plan.devices))
    return tf.distribute.get_strategy()
