"""Fixtures of the autoscaling tests: fake runtime pods serving real HTTP /metrics."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from autoscaling_metrics_pods import MetricsPods


@pytest.fixture
def metrics_pods() -> Iterator[MetricsPods]:
    pods = MetricsPods().start()
    yield pods
    pods.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    """The Kubernetes emulator with the project's CRD and the `ml` namespace."""
    from kube_emulator.helpers import Kube
    from kube_emulator.runner import EmulatorThread

    thread = EmulatorThread().start()
    kube = Kube(thread, thread.write_kubeconfig(tmp_path / "kubeconfig"))
    kube.install_project_crd()
    kube.create_namespace("ml")
    yield kube
    thread.stop()
