"""High availability: two operator replicas, exactly one acts; SIGKILL the leader -> the other takes over."""

from __future__ import annotations

from pathlib import Path

from failover import failover
from kube_emulator.helpers import Kube


def test_one_replica_acts_and_the_standby_takes_over_after_a_sigkill(kube: Kube, tmp_path: Path) -> None:
    got = failover(kube, tmp_path)
    assert got["holder"] == "trtforge-operator-a" and got["b_role"] == "standby"
    assert got["train_jobs"] == 1
    assert got["a_writes"] > 0 and got["b_writes"] == []  # the standby wrote nothing at all
    assert got["holder_after"] == "trtforge-operator-b" and got["transitions"] == 1
    assert got["convert_jobs"] == 1
    # lease 15 s + retry 2 s x jitter: client-go's bound; the pipeline moves on right after
    assert got["leader_s"] <= 20.0 and got["acting_s"] <= got["leader_s"] + 2.0, got


def test_a_leader_stopped_gracefully_releases_the_lease(kube: Kube, tmp_path: Path) -> None:
    got = failover(kube, tmp_path, graceful=True)
    assert got["b_writes"] == [] and got["holder_after"] == "trtforge-operator-b"
    # released (holder empty, 1 s lease): the standby's next retry takes it, no lease duration to wait
    assert got["leader_s"] <= 8.0, got
