from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from trtforge_operator import naming

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_revisions_are_deterministic_and_key_order_free(make_plan: Callable[..., Any]) -> None:
    plan = make_plan
    a, b = plan(), plan()
    assert (a.training, a.engine, a.serving) == (b.training, b.engine, b.serving)
    assert len(a.training) == naming.REVISION_LENGTH
    assert naming.digest({"a": 1, "b": 2}) == naming.digest({"b": 2, "a": 1})


def test_serving_only_change_keeps_training_and_engine(
    make_plan: Callable[..., Any], make_spec: Callable[..., Any]
) -> None:
    plan, spec_dict = make_plan, make_spec
    base = plan()
    for change in (
        {"serving.resources": {"cpu": "2", "memory": "2Gi", "gpus": 0}},
        {"serving.batching": {"maxBatchSize": 8}},
        {"placement": {"nodeSelector": {"pool": "gpu"}}},
    ):
        p = plan(spec_dict(**change))
        assert (p.training, p.engine) == (base.training, base.engine), change
        assert p.serving != base.serving, change


def test_replicas_autoscaling_and_rollout_do_not_change_the_pods(
    make_plan: Callable[..., Any], make_spec: Callable[..., Any]
) -> None:
    plan, spec_dict = make_plan, make_spec
    base = plan()
    for change in (
        {"serving.replicas": 5},
        {"serving.autoscaling": {"enabled": False}},
        {"serving.rollout": {"maxSurge": 2, "progressDeadlineSeconds": 60}},
    ):
        assert plan(spec_dict(**change)).serving == base.serving, change


def test_engine_change_reconverts_but_does_not_retrain(
    make_plan: Callable[..., Any], make_spec: Callable[..., Any]
) -> None:
    plan, spec_dict = make_plan, make_spec
    base, p = plan(), plan(spec_dict(**{"engine.precision": "fp32"}))
    assert p.training == base.training
    assert p.engine != base.engine and p.serving != base.serving


def test_training_change_flows_downstream(
    make_plan: Callable[..., Any], make_spec: Callable[..., Any]
) -> None:
    plan, spec_dict = make_plan, make_spec
    base = plan()
    p = plan(spec_dict(**{"model.train.epochs": 31}))
    assert p.training != base.training and p.engine != base.engine and p.serving != base.serving
    p2 = plan(spec_dict(**{"storage": {"uri": "pvc://other/x"}}))
    assert p2.training != base.training


def test_child_names_are_dns_labels_within_63_chars(make_plan: Callable[..., Any]) -> None:
    plan = make_plan
    long = "m" * 63
    p = plan(name=long)
    names = [
        p.train_job,
        p.predictor,
        p.service,
        *p.convert_jobs,
        naming.config_map_name(long, "train", p.training),
    ]
    for n in names:
        assert len(n) <= 63 and DNS_LABEL.match(n), n
    assert len(p.train_job) <= 59  # room for "-<index>" hostnames of Indexed Job pods
    # distinct inputs keep distinct names after truncation
    assert naming.child_name(long, "train", "a" * 10) != naming.child_name(long, "train", "b" * 10)
    assert naming.child_name("digits", "train", "abc") == "digits-train-abc"


def test_service_name_starts_with_a_letter(
    make_plan: Callable[..., Any], make_spec: Callable[..., Any]
) -> None:
    assert naming.service_name("digits") == "digits"
    assert naming.service_name("1model") == "md-1model"
