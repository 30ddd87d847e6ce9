"""Fixtures shared by the operator tests: the digits example's spec with changes, and plans built from it."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_emulator.fixtures import kube  # noqa: F401  (the emulator fixture, used by `cluster`)
from kube_emulator.helpers import Kube
from trtforge_operator.plan import Owner, Plan
from trtforge_operator.settings import OperatorSettings
from trtforge_runtime.spec.load import parse_spec

sys.path.insert(0, str(Path(__file__).parent))
from operator_process import NAMESPACE, OperatorProcess

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


# ---------------------------------------------------------------------- integration: emulator + operator


@pytest.fixture
def cluster(kube: Kube) -> Kube:  # noqa: F811
    """The emulator with the `ml` namespace."""
    kube.create_namespace(NAMESPACE)
    return kube


@pytest.fixture
def operator(cluster: Kube, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log")
    op.start()
    yield op
    op.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(op.log()[-6000:])


@pytest.fixture
def operator_with(cluster: Kube, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """operator_with(**env) starts an operator with extra environment (its settings); all are stopped
    at the end of the test."""
    started: list[OperatorProcess] = []

    def start(**env: str) -> OperatorProcess:
        op = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log", env=env).start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
