"""Fixtures shared by the operator tests: the digits example's spec with changes, and plans built from it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from trtforge_operator.plan import Owner, Plan
from trtforge_operator.settings import OperatorSettings
from trtforge_runtime.spec.load import parse_spec

REPO = Path(__file__).resolve().parents[2]


def digits_doc() -> dict[str, Any]:
    return yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())


def spec_dict(**changes: Any) -> dict[str, Any]:
    """The digits example's spec with dotted-path changes, e.g. {"engine.precision": "fp32"}."""
    spec = copy.deepcopy(digits_doc()["spec"])
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return spec


def plan(
    spec: dict[str, Any] | None = None, settings: OperatorSettings | None = None, name: str = "digits"
) -> Plan:
    owner = Owner(name=name, namespace="ml", uid="0000-1111", generation=3)
    return Plan.build(owner, parse_spec(spec or spec_dict()), settings or OperatorSettings())


@pytest.fixture
def make_spec() -> Callable[..., dict[str, Any]]:
    return spec_dict


@pytest.fixture
def make_plan() -> Callable[..., Plan]:
    return plan
