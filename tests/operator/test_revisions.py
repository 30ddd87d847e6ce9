"""Which Jobs a new revision supersedes and which stage ConfigMaps it lets go (pure parts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trtforge_operator import labels
from trtforge_operator.plan import Plan
from trtforge_operator.revisions import stale_config_maps, superseded_jobs


def job(name: str, stage: str, done: str | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ml", "labels": {labels.STAGE: stage}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"conditions": [{"type": done, "status": "True"}]} if done else {}
    return {"metadata": meta, "status": status}


def test_only_running_stage_jobs_of_other_revisions_are_superseded(make_plan: Callable[[], Plan]) -> None:
    p = make_plan()
    current = p.train_job
    jobs = {
        current: job(current, "train"),
        "digits-train-old": job("digits-train-old", "train"),
        "digits-train-done": job("digits-train-done", "train", done="Complete"),
        "digits-train-failed": job("digits-train-failed", "train", done="Failed"),
        "digits-train-going": job("digits-train-going", "train", deleting=True),
        "digits-convert-old": job("digits-convert-old", "convert"),
        "digits-cleanup-x": job("digits-cleanup-x", "cleanup"),
        **{n: job(n, "convert") for n in p.convert_jobs},
    }
    names = [j["metadata"]["name"] for j in superseded_jobs(p, jobs)]
    assert names == ["digits-convert-old", "digits-train-old"]


def cm(name: str, stage: str, revision: str, created: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {labels.STAGE: stage, labels.REVISION: revision},
        }
    }


def test_each_stage_keeps_its_newest_revisions_and_the_protected_ones() -> None:
    maps = [cm(f"t{i}", "train", f"r{i}", f"2026-01-01T00:00:0{i}Z") for i in range(6)]
    maps += [
        cm("s0", "serve", "good", "2026-01-01T00:00:00Z"),
        cm("s1", "serve", "x", "2026-01-01T00:00:01Z"),
    ]
    maps += [cm(f"s{i}", "serve", f"s{i}", f"2026-01-01T00:00:0{i}Z") for i in range(2, 5)]
    stale = sorted(c["metadata"]["name"] for c in stale_config_maps(maps, 3, {"r1", "good"}))
    # train: r5, r4, r3 kept, r1 protected; serve: s4, s3, s2 kept, "good" (rollback target) protected
    assert stale == ["s1", "t0", "t2"]
