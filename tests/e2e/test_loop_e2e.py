"""The cluster box's whole-loop scenario (tests/cluster_box/scenario.py) on a real cluster.

The same steps and checks as `tests/cluster_box/test_digits_loop.py`: apply examples/digits.yaml, the
operator pod killed during Training and Deploying, predictions over HTTP and gRPC, closed-loop load that
scales the predictor up and down, a rollout under load without a lost request, a failing quality gate
that leaves the previous revision serving, and the deletion. Runs after test_digits_e2e.py (file order),
in the same release; skipped with the reason when KUBECONFIG reaches no cluster (conftest.py).
"""

from __future__ import annotations

import json
import os

import pytest
from cluster_box.scenario import NAME, DigitsLoop, run_loop
from e2e.cluster import Cluster
from e2e.loop_cluster import RealCluster

pytestmark = pytest.mark.e2e


def test_digits_loop_on_the_cluster(cluster: Cluster, release: str) -> None:
    loop = DigitsLoop(RealCluster(cluster, release, NAME), log=lambda m: print(m, flush=True))
    loop.ready_timeout = cluster.settings.ready_timeout
    # 1 CPU per serving pod in the example: a 4-CPU kind node fits 2 replicas (+1 during a rollout)
    loop.max_replicas = int(os.environ.get("TRTFORGE_E2E_LOOP_MAX_REPLICAS", "2"))
    with loop:
        try:
            report = run_loop(loop)
        finally:  # the figures also when a step failed
            print(json.dumps({k: v for k, v in loop.report.items() if k != "timeline"}, indent=1))
    for step in ("scale-down", "rollout", "after gate failure"):
        assert report["requests"][step]["failed"] == 0, (step, report["requests"][step])
