"""Two `trtforge operator` replicas against one test API server, and a SIGKILL of the leader.

Shared by tests/operator/test_ha.py (one run, asserted) and benchmarks/failover_bench.py (N runs):

1. replica A starts and takes the Lease; replica B starts and stands by (its /readyz says so);
2. the digits ModelDeployment is applied: only A acts (the training Job is created by A's requests
   alone; B's log shows no write to the API besides its Lease reads);
3. A is killed with SIGKILL (no release), and the training Job completes while nobody leads;
4. measured from the kill: until B's /readyz says `leader`, and until the conversion Job exists (B's
   queue saw the Job event while standing by, and its full resync on taking the Lease acts on it).
   Also without the test's polling: from the kill to B's acquireTime in the Lease, and from that to the
   API server's own time of the conversion Job's ADDED event, which a loaded machine's test process
   does not lengthen (all on this machine's one clock).
"""

from __future__ import annotations

import copy
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kube_emulator.helpers import Kube
from operator_process import NAMESPACE, OperatorProcess

REPO = Path(__file__).resolve().parents[2]
LEASE = ("coordination.k8s.io/v1", "Lease", "trtforge-operator", "default")
TRAIN_OK = {"ok": True, "stage": "train", "accuracy": 0.97, "digest": "sha256:0"}
# what a replica that acts writes (urllib3's debug log of the operator's client, --verbose)
WRITE = re.compile(r'"(POST|PATCH|PUT|DELETE) /api[^"]*(?<!/leases/trtforge-operator) HTTP')


def digits() -> dict[str, Any]:
    doc = copy.deepcopy(yaml.safe_load((REPO / "examples" / "digits.yaml").read_text()))
    doc["metadata"]["namespace"] = NAMESPACE
    return doc


def stage_jobs(kube: Kube, stage: str) -> list[dict[str, Any]]:
    return kube.list("batch/v1", "Job", NAMESPACE, f"trtforge.dev/stage={stage}")


def wait(predicate: Any, timeout: float, what: str, interval: float = 0.01) -> float:
    """Seconds until `predicate()` is truthy."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def _seconds(micro_time: str) -> float:
    """A Lease MicroTime (RFC 3339 with microseconds, UTC) as POSIX seconds."""
    return datetime.fromisoformat(micro_time.replace("Z", "+00:00")).timestamp()


def _record_added(kube: Kube, kind: str) -> tuple[dict[str, float], Any]:
    """name -> wall time of each ADDED event of `kind` the API server emits from now on; and an undo."""
    store = kube.emulator.store
    emit = store._emit
    added: dict[str, float] = {}

    def recording(skey: Any, event: Any) -> None:
        if event.type == "ADDED" and event.obj.get("kind") == kind:
            added.setdefault(event.obj["metadata"]["name"], time.time())
        emit(skey, event)

    store._emit = recording
    return added, lambda: setattr(store, "_emit", emit)


def writes(op: OperatorProcess) -> list[str]:
    return [m.group(0) for m in WRITE.finditer(op.log())]


def failover(kube: Kube, tmp: Path, *, graceful: bool = False) -> dict[str, Any]:
    """One run of the scenario; returns the measured seconds and what each replica did.

    graceful: SIGTERM instead of SIGKILL (the leader releases the Lease on its way out)."""
    kube.create_namespace(NAMESPACE)
    a = OperatorProcess(kube.kubeconfig, tmp / "a.log", identity="trtforge-operator-a")
    b = OperatorProcess(kube.kubeconfig, tmp / "b.log", identity="trtforge-operator-b")
    try:
        a.start()
        wait(lambda: a.role() == "leader", 30, "A leads")
        b.start()
        wait(lambda: b.role() == "standby", 30, "B stands by")
        kube.apply(digits())
        wait(lambda: stage_jobs(kube, "train"), 30, "the training Job")
        time.sleep(1.0)  # let any second writer show itself
        before = {
            "holder": kube.get(*LEASE)["spec"]["holderIdentity"],
            "train_jobs": len(stage_jobs(kube, "train")),
            "a_writes": len(writes(a)),
            "b_writes": writes(b),
            "b_role": b.role(),
        }
        (train,) = stage_jobs(kube, "train")
        jobs_added, undo = _record_added(kube, "Job")
        killed, killed_at = time.monotonic(), time.time()
        if graceful:
            a.stop()
        else:
            a.kill()
        stop_s = time.monotonic() - killed
        kube.complete_job(NAMESPACE, train["metadata"]["name"], termination_message=TRAIN_OK)
        wait(lambda: b.role() == "leader", 60, "B takes over", interval=0.05)
        leader_s = time.monotonic() - killed
        wait(lambda: stage_jobs(kube, "convert"), 30, "the conversion Job by B")
        acting_s = time.monotonic() - killed
        undo()
        lease = kube.get(*LEASE)["spec"]
        acquired = _seconds(lease["acquireTime"])
        (convert,) = stage_jobs(kube, "convert")
        return {
            **before,
            "stop_s": stop_s,  # how long the old leader took to exit
            "leader_s": leader_s,
            "acting_s": acting_s,
            "takeover_s": acquired - killed_at,  # by the Lease: the kill to B's acquireTime
            "convert_after_lease_s": jobs_added[convert["metadata"]["name"]] - acquired,
            "holder_after": lease["holderIdentity"],
            "transitions": lease["leaseTransitions"],
            "convert_jobs": len(stage_jobs(kube, "convert")),
        }
    finally:
        a.stop()
        b.stop()
