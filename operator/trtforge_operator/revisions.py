"""What a new revision leaves behind: superseded stage Jobs and old stage ConfigMaps.

- A training or conversion Job still running for a revision the spec no longer asks for is deleted
  (propagationPolicy Background: its pods go with it) with an Event, so quick edits during training
  never leave GPUs burning on revisions nobody will use. Finished Jobs are left to their TTL.
- Each stage keeps the ConfigMaps of its newest `keep` revisions (TRTFORGE_KEEP_CONFIG_REVISIONS), and
  always those of the revisions in use (the current plan's, the last good serving revision that a
  rollback returns to).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from trtforge_operator import events, labels
from trtforge_operator.apply import Kube
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers import convert_job, train_job
from trtforge_operator.status import job_state

STAGE_JOBS = (train_job.STAGE, convert_job.STAGE)


def superseded_jobs(plan: Plan, jobs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Running training/conversion Jobs that the current revisions do not name."""
    wanted = {plan.train_job, *plan.convert_jobs}
    out = []
    for name, job in sorted(jobs.items()):
        meta = job.get("metadata") or {}
        stage = (meta.get("labels") or {}).get(labels.STAGE)
        if stage not in STAGE_JOBS or name in wanted or meta.get("deletionTimestamp"):
            continue
        if job_state(job) == "running":
            out.append(job)
    return out


async def delete_superseded_jobs(
    kube: Kube, plan: Plan, body: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> None:
    """Delete them (and drop them from `jobs`), one Event each."""
    for job in superseded_jobs(plan, jobs):
        meta = job["metadata"]
        stage = meta["labels"][labels.STAGE]
        revision = meta["labels"].get(labels.REVISION, "?")
        newer = plan.training if stage == train_job.STAGE else plan.engine
        if await kube.delete("batch/v1", "Job", meta["namespace"], meta["name"]):
            await events.post(
                kube,
                body,
                "Normal",
                "SupersededJobDeleted",
                f"{stage} Job {meta['name']} (revision {revision}) deleted: superseded by revision {newer}",
            )
        jobs.pop(meta["name"], None)


def _age_key(cm: dict[str, Any]) -> tuple[str, str]:
    return cm["metadata"].get("creationTimestamp") or "", cm["metadata"]["name"]


def stale_config_maps(
    config_maps: list[dict[str, Any]], keep: int, protected: Collection[str]
) -> list[dict[str, Any]]:
    """Per stage, every ConfigMap older than the newest `keep`, except those of `protected` revisions."""
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for cm in config_maps:
        stage = ((cm.get("metadata") or {}).get("labels") or {}).get(labels.STAGE)
        if stage:
            by_stage.setdefault(stage, []).append(cm)
    out = []
    for group in by_stage.values():
        group.sort(
            key=lambda cm: (cm["metadata"].get("creationTimestamp") or "", cm["metadata"]["name"]),
            reverse=True,
        )
        for cm in group[keep:]:
            if cm["metadata"].get("labels", {}).get(labels.REVISION) not in protected:
                out.append(cm)
    return out


async def prune_config_maps(kube: Kube, plan: Plan, protected: Collection[str]) -> None:
    ns = plan.owner.namespace
    listed = await kube.list("v1", "ConfigMap", ns, labels.owner_selector(plan.owner.name))
    keep = plan.settings.keep_config_revisions
    wanted = {plan.training, plan.engine, plan.serving, *protected}
    for cm in stale_config_maps(listed, keep, wanted):
        await kube.delete("v1", "ConfigMap", ns, cm["metadata"]["name"])
