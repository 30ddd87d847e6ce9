"""Label values derived from a ModelDeployment's name are always valid, whatever the name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kube_emulator.validation import check_metadata, check_name
from trtforge_operator import labels
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers import configmap, convert_job, deployment, pdb, service, train_job

MakePlan = Callable[..., Plan]


@pytest.mark.parametrize("name", ["digits", "d" * 63, "d" * 64, "x" * 253, "digits.v2", "-a_b.", "ü-name"])
def test_value_is_a_valid_label_value(name: str) -> None:
    v = labels.value(name)
    assert not check_metadata({"labels": {"k": v}}), v
    if len(name) <= 63 and name.isascii() and name[0].isalnum() and name[-1].isalnum():
        assert v == name  # a valid value is kept as is
    else:
        assert v != labels.value(name + "x")  # cut names stay distinct


def _children(plan: Plan) -> list[dict[str, Any]]:
    out = [
        train_job.train_job(plan),
        configmap.config_map(plan, "train", plan.training),
        deployment.deployment(plan, 1),
        service.service(plan),
    ]
    out += [convert_job.convert_job(plan, t) for t in plan.convert_jobs.values()]
    if (p := pdb.pdb(plan)) is not None:
        out.append(p)
    return out


@pytest.mark.parametrize("name", ["d" * 63, "m" * 200])
def test_children_of_long_names_are_admissible(
    make_plan: MakePlan, make_spec: Callable[..., Any], name: str
) -> None:
    """Names the CRD refuses (over 63) still make valid children, should one get past it."""
    plan = make_plan(make_spec(), name=name)
    for child in _children(plan):
        meta = child["metadata"]
        kind = child["kind"]
        store_key = ("", "services") if kind == "Service" else ("x", kind.lower())
        assert not check_name(meta["name"], store_key), (kind, meta["name"])
        assert not check_metadata(meta), (kind, meta["labels"])
        template = child.get("spec", {}).get("template")
        if template:
            assert not check_metadata(template["metadata"]), (kind, template["metadata"])
