"""High availability: two operator replicas, exactly one acts; SIGKILL the leader -> the other takes over."""

from __future__ import annotations

from pathlib import Path

from failover import failover
from kube_emulator.helpers import Kube

FAILOVER_PROMISE_SECONDS = 20.0
ACT_PROMISE_SECONDS = 2.0
RELEASED_PROMISE_SECONDS = 8.0


def test_one_replica_acts_and_the_standby_takes_over_after_a_sigkill(kube: Kube, tmp_path: Path) -> None:
    got = failover(kube, tmp_path)
    print({k: v for k, v in got.items() if k.endswith("_s")})
    assert got["holder"] == "trtforge-operator-a" and got["b_role"] == "standby"
    assert got["train_jobs"] == 1
    assert got["a_writes"] > 0 and got["b_writes"] == []  # the standby wrote nothing at all
    assert got["holder_after"] == "trtforge-operator-b" and got["transitions"] == 1
    assert got["convert_jobs"] == 1
    # the promise (issue 10: failover within 20 s of the leader's death): lease 15 s + retry 2 s x jitter,
    # client-go's bound, then the pipeline moves on at once. Judged on the Lease's acquireTime and the
    # API server's record of the conversion Job, so the test's polling on a loaded machine does not
    # count; the waits only guard against a hang. (The failover figures: benchmarks/failover_bench.py.)
    assert got["takeover_s"] <= FAILOVER_PROMISE_SECONDS, got
    assert got["convert_after_lease_s"] <= ACT_PROMISE_SECONDS, got


def test_a_leader_stopped_gracefully_releases_the_lease(kube: Kube, tmp_path: Path) -> None:
    got = failover(kube, tmp_path, graceful=True)
    print({k: v for k, v in got.items() if k.endswith("_s")})
    assert got["b_writes"] == [] and got["holder_after"] == "trtforge-operator-b"
    # released (holder empty, 1 s lease): the standby's next retry (2 s x jitter) takes it, no lease
    # duration to wait
    assert got["takeover_s"] <= RELEASED_PROMISE_SECONDS, got
