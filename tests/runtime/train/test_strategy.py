"""Strategy selection: all visible GPUs, multi-worker from TF_CONFIG, CPU otherwise."""

from __future__ import annotations

import json

import pytest
from trtforge_runtime.errors import TrainingError
from trtforge_runtime.train.strategy import StrategyPlan, make_strategy, plan_strategy


def tf_config(cluster: dict[str, list[str]], task_type: str, index: int) -> dict[str, str]:
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


WORKERS3 = {"worker": ["w0:2222", "w1:2222", "w2:2222"]}


def test_cpu_only_uses_the_default_strategy() -> None:
    plan = plan_strategy({}, [])
    assert plan.kind == "default" and plan.is_chief and plan.notes == ()


def test_visible_gpus_use_mirrored_over_all_of_them() -> None:
    plan = plan_strategy({}, ["/gpu:0", "/gpu:1", "/gpu:2"])
    assert plan.kind == "mirrored"
    assert plan.devices == ("/gpu:0", "/gpu:1", "/gpu:2")
    assert plan.is_chief
    assert "MirroredStrategy over 3 GPU(s)" in plan.describe()


@pytest.mark.parametrize(("index", "chief"), [(0, True), (1, False), (2, False)])
def test_tf_config_workers_join_multi_worker(index: int, chief: bool) -> None:
    plan = plan_strategy(tf_config(WORKERS3, "worker", index), ["/gpu:0"], workers=3)
    assert plan.kind == "multi_worker"
    assert (plan.num_workers, plan.task_type, plan.task_index, plan.is_chief) == (3, "worker", index, chief)
    assert plan.devices == ("/gpu:0",) and plan.notes == ()


def test_an_explicit_chief_task_is_the_chief() -> None:
    cluster = {"chief": ["c:2222"], "worker": ["w0:2222"]}
    assert plan_strategy(tf_config(cluster, "chief", 0), [], workers=2).is_chief
    worker0 = plan_strategy(tf_config(cluster, "worker", 0), [], workers=2)
    assert worker0.kind == "multi_worker" and not worker0.is_chief


def test_a_single_worker_tf_config_trains_locally() -> None:
    plan = plan_strategy(tf_config({"worker": ["w0:2222"]}, "worker", 0), ["/gpu:0", "/gpu:1"])
    assert plan.kind == "mirrored" and plan.is_chief
    assert any("single worker" in n for n in plan.notes)


def test_workers_without_tf_config_train_locally_with_a_note() -> None:
    plan = plan_strategy({}, [], workers=4)
    assert plan.kind == "default"
    assert any("workers is 4 but TF_CONFIG is not set" in n for n in plan.notes)


def test_worker_count_disagreement_is_noted() -> None:
    plan = plan_strategy(tf_config(WORKERS3, "worker", 1), [], workers=2)
    assert any("workers is 2 but TF_CONFIG names 3" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "cluster must be a non-empty object"),
        (json.dumps({"cluster": {"worker": "w0:1"}, "task": {}}), "cluster.worker must be a list"),
        (json.dumps({"cluster": {"worker": ["a:1", "b:1"], "ps": ["p:1"]}, "task": {}}), r"\['ps'\]"),
        (json.dumps({"cluster": {"worker": ["a:1", "b:1"]}}), "task must be an object"),
        (json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "chief"}}), "'chief' is not"),
        (
            json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}),
            "index 2 is out of range for 2 worker",
        ),
    ],
)
def test_invalid_tf_config_is_refused(raw: str, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        plan_strategy({"TF_CONFIG": raw}, [])


def test_make_strategy_builds_the_tensorflow_objects() -> None:
    import tensorflow as tf

    default = make_strategy(StrategyPlan(kind="default"))
    assert default is tf.distribute.get_strategy()
    mirrored = make_strategy(StrategyPlan(kind="mirrored", devices=("/cpu:0",)))
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 1
    assert mirrored.extended.worker_devices[0].lower().endswith("cpu:0")
