"""The scheduler and kubelet of the box's one node: pods become local processes.

A new pod is admitted when its claims exist in its namespace (else it stays Pending, `Unschedulable`),
its image is one the project builds (else `ErrImagePull`), its volumes can be set up (else
`ContainerCreating` with the mount error) and its environment resolves (else
`CreateContainerConfigError`). It then gets its own loopback address as `status.podIP`, the box's
finalizer (so that a deletion waits for the kubelet, which is what graceful deletion is on a cluster),
and a process per container. Probes decide readiness; an exit sets `state.terminated` with the exit code
and the termination message; `restartPolicy` decides between a restart (with the kubelet's back-off)
and a finished pod.

Deleting a pod follows Kubernetes' order: the endpoints controller drops it at once (it is
terminating), the kubelet runs the preStop hook, then sends SIGTERM, waits up to
`terminationGracePeriodSeconds` (counted from the deletion, +2 s when the hook overran) and sends
SIGKILL; then the pod's finalizer is removed and the API server deletes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import subprocess
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster_box.api import Api, condition
from cluster_box.containers import ContainerConfigError, Process, launch, termination_message
from cluster_box.images import ImagePullError, Images
from cluster_box.probes import ContainerProbes, http_get, resolve_port
from cluster_box.volumes import PathMap, VolumeError, check_claims, prepare, remove_pod_folder
from kube_emulator.emulator import now_rfc3339

log = logging.getLogger("cluster_box.kubelet")

FINALIZER = "cluster-box.trtforge.dev/kubelet"
NODE = "cluster-box"
HOST_IP = "127.0.0.1"
BACKOFF_BASE, BACKOFF_MAX = 10.0, 300.0  # CrashLoopBackOff: 10 s doubling up to 5 min
LOG_SYNC_SECONDS = 1.0

Submit = Callable[[Coroutine[Any, Any, None]], "concurrent.futures.Future[None]"]


class AddressPool:
    """Pod IPs PREFIX.2-254 (127.42.N.x): each pod its own loopback address, reused last."""

    def __init__(self, prefix: str) -> None:
        self.free = [f"{prefix}.{i}" for i in range(2, 255)]

    def take(self) -> str:
        if not self.free:
            raise RuntimeError("the box ran out of pod addresses")
        return self.free.pop(0)

    def give(self, ip: str) -> None:
        self.free.append(ip)


@dataclass
class ContainerRun:
    spec: dict[str, Any]
    paths: PathMap
    log_path: Path
    process: Process | None = None
    probes: ContainerProbes | None = None
    restarts: int = 0
    last_terminated: dict[str, Any] | None = None
    terminated: dict[str, Any] | None = None
    waiting: dict[str, Any] | None = None
    restart_at: float = 0.0
    prestop: Any = None  # subprocess / future / deadline of the running preStop hook

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    ip: str
    folder: Path
    containers: list[ContainerRun]
    started_at: str
    deleting_since: float | None = None
    grace: float = 30.0
    hooks_started: bool = False
    sigterm_sent: bool = False
    log_synced: float = 0.0
    log_sizes: dict[str, int] = field(default_factory=dict)


def _ready_condition(containers: list[ContainerRun]) -> bool:
    return all(c.running and c.probes is not None and c.probes.ready for c in containers)


class Kubelet:
    def __init__(
        self, root: Path, shim: Path, submit: Submit, pod_network: str, images: Images | None = None
    ) -> None:
        self.root = root
        self.shim = shim
        self.submit = submit
        self.images = images or Images()
        self.addresses = AddressPool(pod_network)
        self.pods: dict[str, PodRun] = {}
        self.events: list[str] = []  # what a `kubectl describe` would show, for failure messages

    # ------------------------------------------------------------------ one step
    def sync(self, api: Api) -> None:
        seen = set()
        for pod in api.list("v1", "Pod"):
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            run = self.pods.get(uid)
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(api, pod, run)
            elif run is None:
                if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
                    self._admit(api, pod)
            else:
                self._step(api, pod, run)
        for uid in [u for u in self.pods if u not in seen]:  # force-deleted: stop at once
            self._release(self.pods.pop(uid), kill=True)

    # ------------------------------------------------------------------ admission
    def _pending(self, api: Api, pod: dict[str, Any], scheduled: bool, reason: str, message: str) -> None:
        now = now_rfc3339()
        status = dict(pod.get("status") or {})
        status["phase"] = "Pending"
        conds = status.get("conditions") or []
        if not scheduled:
            conds = condition(conds, "PodScheduled", "False", reason, message, now)
        else:
            conds = condition(conds, "PodScheduled", "True", "", "", now)
            status["containerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c.get("image"),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
                for c in pod["spec"].get("containers") or []
            ]
        status["conditions"] = conds
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}: {reason}: {message}"
        if key not in self.events:
            self.events.append(key)
            log.info("pod %s", key)
        api.set_status(pod, status)

    def _admit(self, api: Api, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            check_claims(api, pod)
        except VolumeError as exc:
            self._pending(api, pod, False, exc.reason, exc.message)
            return
        containers = pod["spec"].get("containers") or []
        try:
            images = [self.images.resolve(c["image"]) for c in containers]
        except ImagePullError as exc:
            self._pending(api, pod, True, "ErrImagePull", str(exc))
            return
        folder = self.root / "pods" / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
        try:
            runs = [
                ContainerRun(
                    spec=c,
                    paths=prepare(api, pod, c, self.root, folder),
                    log_path=folder / f"{c['name']}.log",
                )
                for c in containers
            ]
        except VolumeError as exc:
            self._pending(api, pod, True, "ContainerCreating", exc.message)
            return
        ip = self.addresses.take()
        pod = (
            api.merge_patch(pod, {"metadata": {"finalizers": [*(meta.get("finalizers") or []), FINALIZER]}})
            or pod
        )
        run = PodRun(meta["uid"], meta["namespace"], meta["name"], ip, folder, runs, now_rfc3339())
        run.grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.pods[run.uid] = run
        pod.setdefault("status", {}).update(podIP=ip, podIPs=[{"ip": ip}], hostIP=HOST_IP)
        for crun, image in zip(runs, images, strict=True):
            crun.waiting = None
            self._start(api, pod, run, crun, image)
        self._write(api, pod, run)

    def _start(
        self, api: Api, pod: dict[str, Any], run: PodRun, crun: ContainerRun, image: Any = None
    ) -> None:
        image = image or self.images.resolve(crun.spec["image"])
        try:
            spec = launch(api, pod, crun.spec, image, crun.paths, run.folder, self.shim)
        except ContainerConfigError as exc:
            crun.waiting = {"reason": "CreateContainerConfigError", "message": str(exc)}
            return
        except FileNotFoundError as exc:
            now = now_rfc3339()
            crun.terminated = {
                "exitCode": 128,
                "reason": "StartError",
                "message": f"failed to create containerd task: {exc}",
                "startedAt": now,
                "finishedAt": now,
            }
            return
        crun.terminated = None
        crun.waiting = None
        crun.process = Process.start(spec, crun.log_path, now_rfc3339())
        crun.probes = ContainerProbes(crun.spec, run.ip)
        crun.probes.future = self.submit(crun.probes.run())
        log.info(
            "started %s/%s[%s] on %s: %s", run.namespace, run.name, crun.name, run.ip, " ".join(spec.argv)
        )

    # ------------------------------------------------------------------ running
    def _exited(self, crun: ContainerRun) -> None:
        assert crun.process is not None
        code = crun.process.exit_code()
        term_path = crun.paths.host(crun.spec.get("terminationMessagePath") or "/dev/termination-log")
        message = termination_message(
            Path(term_path or "/nonexistent"),
            crun.log_path,
            crun.spec.get("terminationMessagePolicy", "File"),
            code,
        )
        crun.terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": crun.process.started_at,
            "finishedAt": now_rfc3339(),
            "containerID": f"box://{crun.process.popen.pid}",
        }
        if message:
            crun.terminated["message"] = message
        if crun.probes is not None:
            crun.probes.cancel()
        crun.process = None

    def _step(self, api: Api, pod: dict[str, Any], run: PodRun) -> None:
        policy = pod["spec"].get("restartPolicy", "Always")
        for crun in run.containers:
            probes = crun.probes
            if crun.process is not None and probes is not None and probes.restart_reason and crun.running:
                log.info("%s/%s[%s]: %s", run.namespace, run.name, crun.name, probes.restart_reason)
                crun.process.terminate()
                if time.monotonic() - (crun.process.term_sent or 0) > run.grace:
                    crun.process.kill()
            if crun.process is not None and crun.process.poll() is not None:
                self._exited(crun)
                code = (crun.terminated or {}).get("exitCode", 0)
                if policy == "Always" or (policy == "OnFailure" and code != 0):
                    crun.last_terminated, crun.terminated = crun.terminated, None
                    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2**crun.restarts)
                    crun.restarts += 1
                    crun.restart_at = time.monotonic() + delay
                    crun.waiting = {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {int(delay)}s restarting failed container={crun.name} "
                        f"pod={run.name}",
                    }
            waiting = (crun.waiting or {}).get("reason")
            if waiting == "CreateContainerConfigError" or (
                waiting == "CrashLoopBackOff" and time.monotonic() >= crun.restart_at
            ):
                self._start(api, pod, run, crun)  # the kubelet retries a missing ConfigMap/Secret key too
        self._sync_logs(api, run)
        self._write(api, pod, run)
        finished = all(c.terminated is not None and c.process is None for c in run.containers)
        if finished and run.ip:  # a finished pod keeps its podIP in status; the address goes back to the pool
            self.addresses.give(run.ip)
            run.ip = ""

    # ------------------------------------------------------------------ status
    def _phase(self, pod: dict[str, Any], run: PodRun) -> str:
        if all(c.terminated is not None for c in run.containers):
            return (
                "Succeeded"
                if all(c.terminated["exitCode"] == 0 for c in run.containers if c.terminated)
                else "Failed"
            )
        if any(c.process is not None or c.last_terminated for c in run.containers):
            return "Running"
        return "Pending"

    def _container_status(self, crun: ContainerRun) -> dict[str, Any]:
        if crun.terminated is not None and crun.process is None:
            state: dict[str, Any] = {"terminated": crun.terminated}
        elif crun.process is not None:
            state = {"running": {"startedAt": crun.process.started_at}}
        else:
            state = {"waiting": crun.waiting or {"reason": "ContainerCreating"}}
        digest = hashlib.sha256(crun.spec.get("image", "").encode()).hexdigest()
        out = {
            "name": crun.name,
            "image": crun.spec.get("image"),
            "imageID": f"{crun.spec.get('image')}@sha256:{digest}",
            "ready": bool(crun.running and crun.probes and crun.probes.ready),
            "started": bool(crun.running and crun.probes and crun.probes.started),
            "restartCount": crun.restarts,
            "state": state,
        }
        if crun.process is not None:
            out["containerID"] = f"box://{crun.process.popen.pid}"
        if crun.last_terminated:
            out["lastState"] = {"terminated": crun.last_terminated}
        return out

    def _write(self, api: Api, pod: dict[str, Any], run: PodRun) -> None:
        now = now_rfc3339()
        phase = self._phase(pod, run)
        ready = phase == "Running" and _ready_condition(run.containers)
        old = pod.get("status") or {}
        conds = old.get("conditions") or []
        conds = condition(conds, "PodScheduled", "True", "", "", now)
        conds = condition(conds, "Initialized", "True", "", "", now)
        why = "" if ready else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady")
        conds = condition(conds, "ContainersReady", "True" if ready else "False", why, "", now)
        conds = condition(conds, "Ready", "True" if ready else "False", why, "", now)
        ip = run.ip or old.get("podIP")
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [{k: v for k, v in c.items() if v != ""} for c in conds],
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": old.get("startTime") or run.started_at,
            "qosClass": old.get("qosClass") or "Guaranteed",
            "containerStatuses": [self._container_status(c) for c in run.containers],
        }
        if ip:
            status.update(podIP=ip, podIPs=[{"ip": ip}])
        if old == status:
            return
        # lastTransitionTime must not move when only the clock did
        api.set_status(pod, status)

    def _sync_logs(self, api: Api, run: PodRun, force: bool = False) -> None:
        if not force and time.monotonic() - run.log_synced < LOG_SYNC_SECONDS:
            return
        run.log_synced = time.monotonic()
        for crun in run.containers:
            try:
                size = crun.log_path.stat().st_size
            except OSError:
                continue
            if run.log_sizes.get(crun.name) == size:
                continue
            run.log_sizes[crun.name] = size
            with crun.log_path.open("rb") as f:
                f.seek(max(0, size - 512 * 1024))
                api.set_log(run.namespace, run.name, crun.name, f.read().decode(errors="replace"))

    # ------------------------------------------------------------------ termination
    def _prestop_done(self, crun: ContainerRun) -> bool:
        hook = crun.prestop
        if hook is None:
            return True
        if isinstance(hook, float):
            return time.monotonic() >= hook
        if isinstance(hook, subprocess.Popen):
            return hook.poll() is not None
        return bool(hook.done())

    def _start_prestop(self, api: Api, pod: dict[str, Any], run: PodRun, crun: ContainerRun) -> None:
        hook = ((crun.spec.get("lifecycle") or {}).get("preStop")) or None
        if hook is None or not crun.running:
            return
        if "sleep" in hook:
            crun.prestop = time.monotonic() + float(hook["sleep"]["seconds"])
        elif "exec" in hook:
            image = self.images.resolve(crun.spec["image"])
            spec = launch(
                api,
                pod,
                {**crun.spec, "command": hook["exec"]["command"], "args": []},
                image,
                crun.paths,
                run.folder,
                self.shim,
            )
            crun.prestop = subprocess.Popen(
                spec.argv, env=spec.env, cwd=spec.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        elif "httpGet" in hook:
            get = hook["httpGet"]
            port = resolve_port(crun.spec, get["port"])
            crun.prestop = self.submit(_prestop_http(run.ip, port, get.get("path", "/"), run.grace))

    def _terminate(self, api: Api, pod: dict[str, Any], run: PodRun | None) -> None:
        if run is None:
            self._drop_finalizer(api, pod)
            return
        now = time.monotonic()
        if run.deleting_since is None:
            # this step's endpoints sync drops the pod and the proxies follow; the hooks start next step
            run.deleting_since = now
            log.info("terminating %s/%s (grace %.0fs)", run.namespace, run.name, run.grace)
            return
        if not run.hooks_started:
            run.hooks_started = True
            for crun in run.containers:
                self._start_prestop(api, pod, run, crun)
        hooks_done = all(self._prestop_done(c) for c in run.containers)
        elapsed = now - run.deleting_since
        if not run.sigterm_sent and (hooks_done or elapsed >= run.grace):
            run.sigterm_sent = True
            # the kubelet gives a preStop hook that overran the grace period 2 s more before SIGKILL
            if not hooks_done:
                run.grace = elapsed + 2.0
            for crun in run.containers:
                if crun.process is not None:
                    crun.process.terminate()
        if elapsed >= run.grace:
            for crun in run.containers:
                if crun.process is not None and crun.process.poll() is None:
                    log.info("%s/%s[%s]: grace period over, SIGKILL", run.namespace, run.name, crun.name)
                    crun.process.kill()
        for crun in run.containers:
            if crun.process is not None and crun.process.poll() is not None:
                self._exited(crun)
        if any(c.process is not None for c in run.containers):
            self._write(api, pod, run)
            return
        self._sync_logs(api, run, force=True)
        self._write(api, pod, run)
        self.pods.pop(run.uid, None)
        self._release(run, kill=False)
        self._drop_finalizer(api, pod)

    def _drop_finalizer(self, api: Api, pod: dict[str, Any]) -> None:
        finalizers = pod["metadata"].get("finalizers") or []
        if FINALIZER in finalizers:
            api.merge_patch(pod, {"metadata": {"finalizers": [f for f in finalizers if f != FINALIZER]}})

    def _release(self, run: PodRun, kill: bool) -> None:
        for crun in run.containers:
            if crun.probes is not None:
                crun.probes.cancel()
            if crun.process is not None and kill:
                crun.process.kill()
        if run.ip:
            self.addresses.give(run.ip)
            run.ip = ""
        remove_pod_folder(run.folder / "empty-dir")

    def shutdown(self) -> None:
        """SIGKILL every process the box started (end of a test)."""
        for run in list(self.pods.values()):
            for crun in run.containers:
                if isinstance(crun.prestop, subprocess.Popen) and crun.prestop.poll() is None:
                    crun.prestop.kill()
            self._release(run, kill=True)
        self.pods.clear()


async def _prestop_http(host: str, port: int, path: str, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(http_get(host, port, path, timeout, []), timeout)
