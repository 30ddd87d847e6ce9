"""One reconcile of one ModelDeployment: train -> convert -> serve, level-triggered and idempotent.

`Pipeline.reconcile(namespace, name)` reads the object and its children (in the operator from the watch
caches: `cache.CachedKube`; a finished stage's pods and logs from the API), creates or patches what is
missing or different, reads Job outcomes (termination messages, log tails), handles rollout rollback,
and writes the status diff (nothing when nothing changed). It is safe to run any number of times in any
state, which is what lets the operator restart anywhere without duplicating children.

Durable progress lives in status: a stage is done for revision R when status.<stage>.revision == R and
its condition is True, failed when the condition is False with a failure reason (a failed revision is
not retried; a spec change makes a new revision). Jobs may be garbage-collected after their TTL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec.load import parse_spec
from trtforge_runtime.spec.model import API_VERSION, KIND

from trtforge_operator import events, feasibility, finalizer, labels, retry, revisions, scaling, storage
from trtforge_operator.apply import Action, Kube, ensure, remove
from trtforge_operator.autoscaling.children import ChildCache
from trtforge_operator.autoscaling.controller import Decisions
from trtforge_operator.errors import (
    AutoscalingError,
    ChildConflictError,
    KubeApiError,
    UnworkableSpecError,
)
from trtforge_operator.plan import Owner, Plan, storage_uri_of
from trtforge_operator.reconcilers import configmap, convert_job, deployment, pdb, service, train_job
from trtforge_operator.reconcilers.jobs import CONTAINER as JOB_CONTAINER
from trtforge_operator.settings import OperatorSettings
from trtforge_operator.status import (
    FAILURE_REASONS,
    StatusBuilder,
    blocked_pod,
    deadline_exceeded,
    failure_message,
    failure_reason,
    job_state,
    pod_report,
    record_revision,
    revision_outcome,
    rolled_out,
)

log = logging.getLogger(__name__)
LOG_TAIL_LINES = 20


@dataclass
class Result:
    """What one reconcile did (for logs, tests and benchmarks)."""

    found: bool = True
    status_patch: dict[str, Any] | None = None
    resource_version: str | None = None
    phase: str | None = None


class Pipeline:
    def __init__(self, kube: Kube, settings: OperatorSettings, decisions: Decisions | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.decisions: Decisions = {} if decisions is None else decisions  # the autoscaler's, to apply
        # the hpa / keda children as the operator's watches see them (fed by `handlers`)
        self.autoscaler_children = ChildCache()
        self._scale_notes: dict[tuple[str, str], str] = {}  # ignored `kubectl scale md` Events posted

    # ------------------------------------------------------------------ entry
    async def reconcile(self, namespace: str, name: str) -> Result:
        started, calls = time.perf_counter(), self.kube.requests
        try:
            return await self._reconcile(namespace, name)
        finally:
            log.debug(
                "reconciled %s/%s in %.3f s (%d API calls)",
                namespace,
                name,
                time.perf_counter() - started,
                self.kube.requests - calls,
            )

    async def _reconcile(self, namespace: str, name: str) -> Result:
        body = await self.kube.get(API_VERSION, KIND, namespace, name)
        if body is None:
            return Result(found=False)
        if body["metadata"].get("deletionTimestamp"):
            await finalizer.finalize(self.kube, body, self.settings)
            return Result(found=False)
        meta = body["metadata"]
        st = StatusBuilder(dict(body.get("status") or {}), meta.get("generation"))
        owner = Owner(name, namespace, meta["uid"], int(meta.get("generation") or 1))
        message, retried = "", None
        cleanup = finalizer.FINALIZER in (meta.get("finalizers") or [])  # kept while the spec is invalid
        try:
            spec = parse_spec(body.get("spec"), source=f"ModelDeployment {namespace}/{name}")
            feasibility.check(spec, storage_uri_of(spec, self.settings), self.settings)
            plan = Plan.build(owner, spec, self.settings)
            cleanup = finalizer.needs_cleanup(spec, plan)
            await self._check_secret(plan)
            await storage.ensure_claims(self.kube, namespace, plan.store, spec, self.settings)
            jobs = await self._stage_jobs(plan, body)
            retried = await retry.retry_failed_stage(self.kube, plan, st, body, jobs)
            message = await self._run(plan, st, body, jobs)
            message = await self._note_ignored_scale(plan, body, message)
        except ManifestError as exc:
            st.fail("InvalidSpec", str(exc))
        except ChildConflictError as exc:
            st.fail("ChildConflict", str(exc))
        except KubeApiError as exc:
            if not exc.refused:
                raise  # transient: the controller retries with back-off
            st.fail("InvalidSpec", f"the API server refused a child of this ModelDeployment: {exc}")
        st.finish("Ready", message)
        body = await finalizer.keep_in_line(self.kube, body, cleanup)
        result = await self._write_status(body, st)
        if retried is not None:
            await retry.mark_handled(self.kube, body, retried)
        return result

    async def _note_ignored_scale(self, plan: Plan, body: dict[str, Any], message: str) -> str:
        """`kubectl scale md` while autoscaling owns the replicas: said in status.message, and in a
        Warning Event once per value (per operator process)."""
        key = (plan.owner.namespace, plan.owner.name)
        note = scaling.ignored_scale(plan)
        if note is None:
            self._scale_notes.pop(key, None)
            return message
        if self._scale_notes.get(key) != note:
            await events.post(self.kube, body, "Warning", scaling.SCALE_IGNORED, note)
            self._scale_notes[key] = note
        return f"{message}; {note}" if message else note

    async def _stage_jobs(self, plan: Plan, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The ModelDeployment's Jobs by name, without the running ones a new revision superseded."""
        listed = await self.kube.list(
            "batch/v1", "Job", plan.owner.namespace, labels.owner_selector(plan.owner.name)
        )
        jobs = {j["metadata"]["name"]: j for j in listed}
        await revisions.delete_superseded_jobs(self.kube, plan, body, jobs)
        return jobs

    async def _check_secret(self, plan: Plan) -> None:
        secret = plan.storage_secret  # spec.storage.secretRef, else TRTFORGE_STORAGE_SECRET for s3://
        if secret is None or self.settings.clusterwide:
            return  # all namespaces watched: no Secret access; a missing one blocks the Job's pod instead
        name, source = secret
        if await self.kube.get("v1", "Secret", plan.owner.namespace, name) is None:
            raise UnworkableSpecError(
                "spec.storage.secretRef.name",
                f"Secret {plan.owner.namespace}/{name} does not exist"
                + ("" if source.startswith("spec.") else f" (the operator's default {source})"),
            )

    async def _write_status(self, body: dict[str, Any], st: StatusBuilder) -> Result:
        patch = st.patch()
        meta = body["metadata"]
        result = Result(phase=st.desired.get("phase"))
        if not patch:
            return result
        # guarded by the resourceVersion it was computed from: a status computed from a stale read (a
        # watch cache behind) meets 409 Conflict and the queue reconciles again instead
        guarded = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": patch}
        obj = await self.kube.patch(API_VERSION, KIND, meta["namespace"], meta["name"], guarded, "status")
        result.status_patch = patch
        result.resource_version = obj.get("metadata", {}).get("resourceVersion")
        await asyncio.gather(
            *(
                events.post(self.kube, body, etype, reason, msg)
                for etype, reason, msg in events.transitions(st.current.get("conditions"), st.conditions)
            )
        )
        return result

    # ------------------------------------------------------------------ stages
    async def _run(
        self, plan: Plan, st: StatusBuilder, body: dict[str, Any], jobs: dict[str, dict[str, Any]]
    ) -> str:
        if not await self._train(plan, st, jobs):
            await self._observe_serving(plan, st, body)
            return str((st.condition("Trained") or {}).get("message") or "training")
        if not await self._convert(plan, st, jobs):
            await self._observe_serving(plan, st, body)
            return str((st.condition("EngineBuilt") or {}).get("message") or "converting")
        return await self._serve(plan, st, body)

    async def _ensure_config(self, plan: Plan, stage: str, revision: str, st: StatusBuilder) -> None:
        action, _ = await ensure(
            self.kube, configmap.config_map(plan, stage, revision), owner_uid=plan.owner.uid, immutable=True
        )
        if action is Action.CREATED:  # a new revision: the oldest ones' ConfigMaps may go
            last_good = st.section("serving").get("lastGoodRevision")
            await revisions.prune_config_maps(self.kube, plan, [last_good] if last_good else [])

    async def _train(self, plan: Plan, st: StatusBuilder, jobs: dict[str, dict[str, Any]]) -> bool:
        model = st.section("model")
        trained = st.condition("Trained")
        if not plan.trains:
            st.desired["model"] = {
                "uri": plan.model_location.uri,
                "revision": plan.training,
                "digest": None,
                "accuracy": None,
            }
            st.set("Trained", "True", "Imported", f"model imported from {plan.model_location.uri}")
            return True
        same = model.get("revision") == plan.training
        if same and trained and trained.get("status") == "True":
            return True
        if same and trained and trained.get("status") == "False" and trained.get("reason") in FAILURE_REASONS:
            st.fail(trained["reason"], trained.get("message") or "training failed")
            return False
        st.desired["model"] = {"uri": plan.model_location.uri, "revision": plan.training}
        if not same:
            st.desired["model"].update(digest=None, accuracy=None)
        job = jobs.get(plan.train_job)
        if job is None:
            await self._ensure_config(plan, train_job.STAGE, plan.training, st)
            svc = train_job.train_service(plan)
            if svc is not None:
                await ensure(self.kube, svc, owner_uid=plan.owner.uid)
            await ensure(
                self.kube, train_job.train_job(plan), owner_uid=plan.owner.uid, existing=None, immutable=True
            )
            msg = f"training Job {plan.train_job} created"
            st.set("Trained", "Unknown", "Training", msg)
            st.running("Training")
            return False
        state = job_state(job)
        if state == "running":
            active = int(job.get("status", {}).get("active") or 0)
            st.set(
                "Trained",
                "Unknown",
                "Training",
                f"training Job {plan.train_job} running ({active} active pods)",
            )
            st.running("Training")
            await self._blocked(plan, st, [plan.train_job])
            return False
        pods = await self.kube.list("v1", "Pod", plan.owner.namespace, f"{labels.JOB}={plan.train_job}")
        if state == "succeeded":
            report = pod_report(pods, JOB_CONTAINER, succeeded=True)
            summary = report.summary or {}
            if summary and summary.get("ok") is False:
                st.set(
                    "Trained", "False", "JobFailed", str(summary.get("error") or "training reported failure")
                )
                st.fail("JobFailed", str(summary.get("error") or "training reported failure"))
                return False
            accuracy = summary.get("accuracy")
            st.desired["model"].update(
                digest=summary.get("digest"),
                accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
            )
            detail = (
                f"test accuracy {accuracy:.4f}"
                if isinstance(accuracy, int | float)
                else "no summary reported"
            )
            st.set("Trained", "True", "Succeeded", f"model {plan.training} trained: {detail}")
            return True
        await self._job_failed(plan, st, "Trained", job, pods)
        return False

    async def _convert(self, plan: Plan, st: StatusBuilder, jobs: dict[str, dict[str, Any]]) -> bool:
        engine = st.section("engine")
        built = st.condition("EngineBuilt")
        same = engine.get("revision") == plan.engine
        if same and built and built.get("status") == "True":
            return True
        if same and built and built.get("status") == "False" and built.get("reason") in FAILURE_REASONS:
            st.fail(built["reason"], built.get("message") or "conversion failed")
            return False
        backend = str(plan.spec.engine.backend)
        st.desired["engine"] = {"uri": plan.engine_location.uri, "backend": backend, "revision": plan.engine}
        if not same:
            st.desired["engine"].update(
                version=None,
                precision=None,
                computeCapabilities=None,
                sizeBytes=None,
                buildSeconds=None,
                top1Drop=None,
            )
        wanted = plan.convert_jobs
        missing = [n for n in wanted if n not in jobs]
        if missing:
            await self._ensure_config(plan, convert_job.STAGE, plan.engine, st)
            for job_name in missing:
                manifest = convert_job.convert_job(plan, wanted[job_name])
                await ensure(self.kube, manifest, owner_uid=plan.owner.uid, existing=None, immutable=True)
        states = {n: (job_state(jobs[n]) if n in jobs else "running") for n in wanted}
        failed = [n for n, s in states.items() if s == "failed"]
        if failed:
            pods = await self.kube.list("v1", "Pod", plan.owner.namespace, f"{labels.JOB}={failed[0]}")
            await self._job_failed(plan, st, "EngineBuilt", jobs[failed[0]], pods)
            return False
        running = [n for n, s in states.items() if s == "running"]
        if running:
            done = len(wanted) - len(running)
            st.set("EngineBuilt", "Unknown", "Converting", f"conversion Jobs: {done}/{len(wanted)} done")
            st.running("Converting")
            await self._blocked(plan, st, [n for n in running if n in jobs])
            return False
        summaries = []
        for job_name in wanted:
            pods = await self.kube.list("v1", "Pod", plan.owner.namespace, f"{labels.JOB}={job_name}")
            summaries.append(pod_report(pods, JOB_CONTAINER, succeeded=True).summary or {})
        st.desired["engine"].update(self._engine_summary(plan, summaries))
        precision = st.desired["engine"].get("precision") or "?"
        st.set("EngineBuilt", "True", "Succeeded", f"engine {plan.engine} built ({backend}, {precision})")
        return True

    @staticmethod
    def _engine_summary(plan: Plan, summaries: list[dict[str, Any]]) -> dict[str, Any]:
        def nums(key: str) -> list[float]:
            return [float(s[key]) for s in summaries if isinstance(s.get(key), int | float)]

        out: dict[str, Any] = {}
        precision = next((s["precision"] for s in summaries if s.get("precision")), None)
        version = next(
            (
                s.get("libraryVersion") or s.get("version")
                for s in summaries
                if s.get("libraryVersion") or s.get("version")
            ),
            None,
        )
        ccs: list[str] = []
        for s in summaries:
            for cc in s.get("computeCapabilities") or (
                [s["computeCapability"]] if s.get("computeCapability") else []
            ):
                if str(cc) not in ccs:
                    ccs.append(str(cc))
        if str(plan.spec.engine.backend) != "onnxruntime":
            ccs = ccs or list(plan.spec.engine.compute_capabilities)
        out["precision"] = precision
        out["version"] = str(version) if version else None
        out["computeCapabilities"] = ccs or None
        out["sizeBytes"] = int(sum(nums("sizeBytes"))) if nums("sizeBytes") else None
        out["buildSeconds"] = round(sum(nums("buildSeconds")), 3) if nums("buildSeconds") else None
        out["top1Drop"] = max(nums("top1Drop")) if nums("top1Drop") else None
        return out

    async def _job_failed(
        self, plan: Plan, st: StatusBuilder, condition: str, job: dict[str, Any], pods: list[dict[str, Any]]
    ) -> None:
        """A stage's Job failed: its condition and the phase say why, with the last lines of its log."""
        report = pod_report(pods, JOB_CONTAINER, succeeded=False)
        tail = await self._log_tail(plan.owner.namespace, report.pod)
        reason = failure_reason(job, report)
        message = failure_message(job, report, tail)
        st.set(condition, "False", reason, message)
        st.fail(reason, message)

    async def _blocked(self, plan: Plan, st: StatusBuilder, job_names: list[str]) -> None:
        """A running stage whose pod cannot start (a missing Secret or ConfigMap): Failed, InvalidSpec,
        while it lasts; once the user creates what is missing, the pod starts and the stage runs on."""
        for job_name in job_names:  # (from the pod watch: a pod that cannot start triggers this anyway)
            selector = f"{labels.JOB}={job_name}"
            pods = await self.kube.list("v1", "Pod", plan.owner.namespace, selector, cached=True)
            problem = blocked_pod(pods)
            if problem is not None:
                st.fail("InvalidSpec", f"Job {job_name}: {problem}")
                return

    async def _log_tail(self, namespace: str, pod: str | None) -> str | None:
        if pod is None:
            return None
        return await self.kube.pod_log(namespace, pod, JOB_CONTAINER, LOG_TAIL_LINES)

    # ------------------------------------------------------------------ serving
    async def _observe_serving(self, plan: Plan, st: StatusBuilder, body: dict[str, Any]) -> None:
        """While earlier stages run, keep reporting (and scaling) whatever revision is serving."""
        dep = await self.kube.get("apps/v1", "Deployment", plan.owner.namespace, plan.predictor)
        if dep is None:
            return
        spec_replicas = deployment.desired_replicas(plan, dep, None)
        if spec_replicas is not None and dep.get("spec", {}).get("replicas") != spec_replicas:
            dep = await self.kube.patch(
                "apps/v1",
                "Deployment",
                plan.owner.namespace,
                plan.predictor,
                {"spec": {"replicas": spec_replicas}},
            )
        dep = await self._autoscale(plan, st, body, dep)
        self._serving_status(plan, st, dep, deployment.template_revision(dep))

    async def _autoscale(
        self, plan: Plan, st: StatusBuilder, body: dict[str, Any], dep: dict[str, Any]
    ) -> dict[str, Any]:
        """Whoever owns the Deployment's replicas: the built-in autoscaler's pending decision is applied,
        the hpa / keda child kept in line. Returns the Deployment as it now is."""
        dep = await scaling.apply_builtin_decision(self.kube, plan, st, body, dep, self.decisions)
        try:
            children = await scaling.reconcile_children(self.kube, plan, body, self.autoscaler_children)
            for change in children:
                log.info("%s/%s: %s", plan.owner.namespace, plan.owner.name, change)
        except AutoscalingError as exc:  # e.g. no KEDA in the cluster: the Deployment serves meanwhile
            st.keep_degraded("AutoscalingUnavailable", str(exc))
        return dep

    def _serving_status(
        self, plan: Plan, st: StatusBuilder, dep: dict[str, Any], revision: str | None
    ) -> None:
        dst = dep.get("status") or {}
        serving = st.desired.setdefault("serving", {})
        serving.update(
            revision=revision,
            replicas=int(dst.get("replicas") or 0),
            readyReplicas=int(dst.get("readyReplicas") or 0),
            selector=labels.selector_string(labels.predictor_selector(plan.owner.name)),
            url=plan.url,
        )
        ready = int(dst.get("readyReplicas") or 0)
        if ready > 0:
            st.set("Available", "True", "MinimumReplicasAvailable", f"{ready} serving replicas ready")
        else:
            st.set("Available", "False", "MinimumReplicasUnavailable", "no serving replica is ready")

    async def _serve(self, plan: Plan, st: StatusBuilder, body: dict[str, Any]) -> str:
        ns, uid = plan.owner.namespace, plan.owner.uid
        current = st.section("serving")
        history = list(current.get("history") or [])
        last_good = current.get("lastGoodRevision")
        # an absent Deployment is created with a replica count of its own: a cache miss is confirmed
        dep = await self.kube.get("apps/v1", "Deployment", ns, plan.predictor, confirm_miss=True)
        await self._ensure_config(plan, deployment.STAGE, plan.serving, st)
        desired = deployment.deployment(
            plan, deployment.desired_replicas(plan, dep, current.get("desiredReplicas"))
        )
        good_template = self._good_template(dep)
        rolled_back = revision_outcome(history, plan.serving) == "RolledBack"
        if rolled_back and good_template is not None:
            desired["spec"]["template"] = good_template
            desired["metadata"]["labels"][labels.REVISION] = (
                deployment.template_revision({"spec": {"template": good_template}}) or ""
            )
        if (
            dep is not None
            and deployment.template_revision(dep) == plan.serving
            and deadline_exceeded(dep)
            and not rolled_back
        ):
            if good_template is not None and last_good and last_good != plan.serving:
                desired["spec"]["template"] = good_template
                desired["metadata"]["labels"][labels.REVISION] = last_good
                history = record_revision(
                    history,
                    plan.serving,
                    "RolledBack",
                    plan.engine_location.uri,
                    st.now,
                    plan.spec.revision_history_limit,
                )
                rolled_back = True
                log.info(
                    "%s/%s: serving revision %s missed its progress deadline; rolling back to %s",
                    ns,
                    plan.owner.name,
                    plan.serving,
                    last_good,
                )
            else:
                msg = (
                    f"serving revision {plan.serving} did not become ready within "
                    f"{plan.spec.serving.rollout.progress_deadline_seconds}s "
                    "and there is no earlier good revision to roll back to"
                )
                history = record_revision(
                    history,
                    plan.serving,
                    "Failed",
                    plan.engine_location.uri,
                    st.now,
                    plan.spec.revision_history_limit,
                )
                st.desired.setdefault("serving", {})["history"] = history
                self._serving_status(plan, st, dep, plan.serving)
                st.fail("ProgressDeadlineExceeded", msg)
                return msg
        late_ready = dep is not None and rolled_out(dep) and deployment.template_revision(dep) == plan.serving
        failed_before = revision_outcome(history, plan.serving) == "Failed"
        if dep is not None and failed_before and not rolled_back and not late_ready:
            self._serving_status(plan, st, dep, deployment.template_revision(dep))
            st.fail("ProgressDeadlineExceeded", f"serving revision {plan.serving} did not become ready")
            return "failed"
        action, dep = await ensure(
            self.kube, desired, owner_uid=uid, existing=dep, keep=[("spec", "replicas")]
        )
        dep = await self._autoscale(plan, st, body, dep)
        await ensure(self.kube, service.service(plan), owner_uid=uid)
        want_pdb = pdb.pdb(plan)
        if want_pdb is not None:
            await ensure(self.kube, want_pdb, owner_uid=uid)
        else:
            existing_pdb = await self.kube.get("policy/v1", "PodDisruptionBudget", ns, plan.predictor)
            await remove(self.kube, "policy/v1", "PodDisruptionBudget", existing_pdb, uid)
        serving_rev = deployment.template_revision(dep)
        if serving_rev == plan.serving and revision_outcome(history, plan.serving) is None:
            history = record_revision(
                history,
                plan.serving,
                "Deploying",
                plan.engine_location.uri,
                st.now,
                plan.spec.revision_history_limit,
            )
        done = action is not Action.PATCHED and rolled_out(dep)
        if done and serving_rev == plan.serving:
            history = record_revision(
                history,
                plan.serving,
                "Ready",
                plan.engine_location.uri,
                st.now,
                plan.spec.revision_history_limit,
            )
            last_good = plan.serving
            await self._remember_good(plan, dep)
        self._serving_status(plan, st, dep, serving_rev)
        serving = st.desired["serving"]
        serving["history"] = history
        serving["lastGoodRevision"] = last_good
        if rolled_back:
            msg = (
                f"serving revision {plan.serving} did not become ready within "
                f"{plan.spec.serving.rollout.progress_deadline_seconds}s; rolled back to {last_good}"
            )
            st.keep_degraded("RolledBack", msg)
            if not done:
                st.running("Deploying")
            return msg
        if not done:
            st.running("Deploying")
            blocked = await self._serving_blocked(plan, st, dep)
            return blocked or f"rolling out serving revision {plan.serving}"
        return f"serving revision {plan.serving} at {plan.url}"

    async def _serving_blocked(self, plan: Plan, st: StatusBuilder, dep: dict[str, Any]) -> str | None:
        """A serving pod of the new revision that cannot start (its storage Secret or a ConfigMap is
        missing), as for a stage's Job pod: with no replica ready the ModelDeployment is Failed
        (InvalidSpec) while it lasts; with an earlier revision still serving it stays Deploying and
        Degraded (InvalidSpec). Once the pod starts, the rollout goes on."""
        selector = labels.selector_string(
            {**labels.predictor_selector(plan.owner.name), labels.REVISION: plan.serving}
        )
        problem = blocked_pod(await self.kube.list("v1", "Pod", plan.owner.namespace, selector, cached=True))
        if problem is None:
            return None
        message = f"serving Deployment {plan.predictor}: {problem}"
        if int((dep.get("status") or {}).get("readyReplicas") or 0) > 0:
            st.keep_degraded("InvalidSpec", message)
        else:
            st.set("Available", "False", "PodCannotStart", message)
            st.fail("InvalidSpec", message)
        return message

    @staticmethod
    def _good_template(dep: dict[str, Any] | None) -> dict[str, Any] | None:
        if dep is None:
            return None
        text = (dep.get("metadata", {}).get("annotations") or {}).get(labels.LAST_GOOD_TEMPLATE)
        if not text:
            return None
        try:
            tmpl = json.loads(text)
        except ValueError:
            return None
        return tmpl if isinstance(tmpl, dict) else None

    async def _remember_good(self, plan: Plan, dep: dict[str, Any]) -> None:
        """Keep the template of a revision that became ready on the Deployment, for rollbacks."""
        tmpl = dep.get("spec", {}).get("template")
        text = json.dumps(tmpl, sort_keys=True, separators=(",", ":"))
        annotations = dep.get("metadata", {}).get("annotations") or {}
        if annotations.get(labels.LAST_GOOD_TEMPLATE) == text:
            return
        patch = {
            "metadata": {
                "annotations": {
                    labels.LAST_GOOD_TEMPLATE: text,
                    labels.LAST_GOOD_REVISION: deployment.template_revision(dep) or "",
                }
            }
        }
        await self.kube.patch("apps/v1", "Deployment", plan.owner.namespace, plan.predictor, patch)


__all__ = ["Pipeline", "Result"]
