"""Fixtures of the autoscaling tests: fake runtime pods serving real HTTP /metrics, and the emulator."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from autoscaling_metrics_pods import MetricsPods
from kube_emulator.fixtures import kube  # noqa: F401  (importing a fixture registers it here)


@pytest.fixture
def metrics_pods() -> Iterator[MetricsPods]:
    pods = MetricsPods().start()
    yield pods
    pods.stop()


@pytest.fixture
def cluster(kube: Any) -> Any:  # noqa: F811
    """The shared Kubernetes emulator (project CRD installed) with the `ml` namespace."""
    kube.create_namespace("ml")
    return kube
