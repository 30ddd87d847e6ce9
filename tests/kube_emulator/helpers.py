"""Test-side helpers: the emulator as a cluster, with tests acting as job controller and kubelet.

`Kube` wraps a running `EmulatorThread`. Its object helpers (`get`, `list`, `create`, `apply`,
`patch`, `set_status`, `delete`) act on the store directly (no HTTP), through the same semantics as
API requests, so watchers (kopf) see every change. The controller helpers write what the real Job and
Deployment controllers and the kubelet would: pods with statuses, Job conditions, Deployment
rollout status.
"""

from __future__ import annotations

import asyncio
import copy
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from kube_emulator.controllers import (
    complete_job,
    deep_merge,
    deployment_failed,
    deployment_ready,
    start_job,
)
from kube_emulator.emulator import Emulator
from kube_emulator.errors import ApiError
from kube_emulator.patch import MERGE_PATCH
from kube_emulator.resources import ResourceType
from kube_emulator.runner import EmulatorThread, api_client, token_for, write_kubeconfig
from kube_emulator.selectors import LabelSelector

if TYPE_CHECKING:
    from kube_emulator.kopf_runner import KopfThread

REPO = Path(__file__).resolve().parents[2]
PROJECT_CRD = REPO / "crds" / "modeldeployments.trtforge.dev.yaml"
KEDA_CRD = Path(__file__).with_name("crds") / "keda.sh_scaledobjects.yaml"
KOPF_CRDS = Path(__file__).with_name("crds") / "kopf.dev_peerings.yaml"
KUBECTL = REPO / ".tools" / "bin" / "kubectl"
HELM = REPO / ".tools" / "bin" / "helm"
T = TypeVar("T")
Objects = list[dict[str, Any]]


_YAML_CACHE: dict[tuple[str, float], list[dict[str, Any]]] = {}


def load_yaml_documents(path: str | Path) -> list[dict[str, Any]]:
    """The documents of a YAML file (parsed once per process and modification time; deep copies)."""
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _YAML_CACHE:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        _YAML_CACHE[key] = [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]
    return copy.deepcopy(_YAML_CACHE[key])


class Kube:
    """A running emulator plus helpers; what the `kube` pytest fixture yields."""

    def __init__(self, thread: EmulatorThread, kubeconfig: Path) -> None:
        self.thread = thread
        self.kubeconfig = kubeconfig

    # ------------------------------------------------------------ connection

    @property
    def url(self) -> str:
        return self.thread.url

    @property
    def emulator(self) -> Emulator:
        assert self.thread.emulator is not None
        return self.thread.emulator

    def client(self, service_account: tuple[str, str] | None = None) -> Any:
        """A new `kubernetes.client.ApiClient` for the emulator (as a ServiceAccount under RBAC if given)."""
        return api_client(self.url, service_account)

    def connection_info(self, service_account: tuple[str, str] | None = None) -> Any:
        """A `kopf.ConnectionInfo` for `@kopf.on.login()` handlers (a ServiceAccount under RBAC if given)."""
        import kopf

        return kopf.ConnectionInfo(
            server=self.url, token=token_for(service_account), scheme="Bearer", default_namespace="default"
        )

    def write_kubeconfig(
        self, path: str | Path, namespace: str = "default", service_account: tuple[str, str] | None = None
    ) -> Path:
        """A kubeconfig for the emulator; with `service_account=(namespace, name)` RBAC applies to it."""
        return write_kubeconfig(self.url, path, namespace, service_account)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against the emulator; raises with its stderr on failure when `check`."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.kubeconfig.parent)}
        proc = subprocess.run(
            [str(KUBECTL), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def run_operator(self, **kwargs: Any) -> KopfThread:
        """A `KopfThread` for this emulator (not started: use it as a context manager)."""
        from kube_emulator.kopf_runner import KopfThread

        return KopfThread(self, **kwargs)

    async def wait_for_async(
        self,
        predicate: Callable[[], Any],
        timeout: float = 10.0,
        interval: float = 0.02,
        message: str = "condition",
    ) -> Any:
        """`wait_for` for async tests: sleeps with asyncio so that kopf in the same loop keeps running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await asyncio.to_thread(predicate)
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {message}")
            await asyncio.sleep(interval)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(emulator, *args, **kwargs)` on the emulator's loop."""
        return self.thread.call(fn, self.emulator, *args, **kwargs)

    # ------------------------------------------------------------ generic objects

    def _rtype(self, api_version: str, kind: str) -> ResourceType:
        return self.emulator.rtype_for(api_version, kind)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when absent (a deep copy: safe to mutate)."""

        def run(emu: Emulator) -> dict[str, Any] | None:
            try:
                return copy.deepcopy(emu.get(emu.rtype_for(api_version, kind), namespace, name))
            except ApiError as exc:
                if exc.code == 404:
                    return None
                raise

        return self.call(run)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        if isinstance(label_selector, dict):
            label_selector = ",".join(f"{k}={v}" for k, v in label_selector.items())

        def run(emu: Emulator) -> list[dict[str, Any]]:
            listed = emu.list(emu.rtype_for(api_version, kind), namespace, label_selector=label_selector)
            return copy.deepcopy(listed["items"])

        return self.call(run)

    def create(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        def run(emu: Emulator) -> dict[str, Any]:
            rtype = emu.rtype_for(obj["apiVersion"], obj["kind"])
            ns = (
                namespace
                or obj.get("metadata", {}).get("namespace")
                or ("default" if rtype.namespaced else None)
            )
            return copy.deepcopy(emu.create(rtype, ns, obj))

        return self.call(run)

    def apply(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create, or merge-patch an existing object (spec and metadata; status via set_status)."""

        def run(emu: Emulator) -> dict[str, Any]:
            rtype = emu.rtype_for(obj["apiVersion"], obj["kind"])
            ns = (
                namespace
                or obj.get("metadata", {}).get("namespace")
                or ("default" if rtype.namespaced else None)
            )
            if emu.store.get(rtype.store_key, (ns or "", obj["metadata"]["name"])) is None:
                return copy.deepcopy(emu.create(rtype, ns, obj))
            return copy.deepcopy(emu.patch(rtype, ns, obj["metadata"]["name"], MERGE_PATCH, obj))

        return self.call(run)

    def apply_file(self, path: str | Path, namespace: str | None = None) -> Objects:
        return [self.apply(doc, namespace) for doc in load_yaml_documents(path)]

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON-merge-patch an object (or its status with subresource="status")."""

        def run(emu: Emulator) -> dict[str, Any]:
            rtype = emu.rtype_for(api_version, kind)
            return copy.deepcopy(
                emu.patch(rtype, namespace, name, MERGE_PATCH, patch, subresource=subresource)
            )

        return self.call(run)

    def set_status(
        self,
        api_version: str,
        kind: str,
        name: str,
        status: dict[str, Any],
        namespace: str | None = None,
        *,
        merge: bool = True,
    ) -> dict[str, Any]:
        """Write an object's status (merged into the current one, or replacing it with merge=False)."""

        def run(emu: Emulator) -> dict[str, Any]:
            rtype = emu.rtype_for(api_version, kind)
            current = emu.get(rtype, namespace, name)
            body = copy.deepcopy(current)
            body["status"] = deep_merge(current.get("status") or {}, status) if merge else status
            sub = "status" if rtype.status else None
            return copy.deepcopy(emu.replace(rtype, namespace, name, body, subresource=sub))

        return self.call(run)

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
    ) -> None:
        def run(emu: Emulator) -> None:
            emu.delete(emu.rtype_for(api_version, kind), namespace, name, {"propagationPolicy": propagation})

        self.call(run)

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return self.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        )

    def events(self, namespace: str | None = None, involved_name: str | None = None) -> Objects:
        """Core v1 Events (as kopf and client-go post them), optionally for one involved object."""
        items = self.list("v1", "Event", namespace)
        return [
            e
            for e in items
            if involved_name is None or e.get("involvedObject", {}).get("name") == involved_name
        ]

    def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 10.0,
        interval: float = 0.02,
        message: str = "condition",
    ) -> Any:
        """Poll `predicate` until it returns a truthy value (returned); AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {message}")
            time.sleep(interval)

    # ------------------------------------------------------------ CRDs

    def install_crd(self, source: str | Path | dict[str, Any], *, lenient: bool = False) -> dict[str, Any]:
        """Install (create or replace) a CRD from a YAML file or a dict; its kinds are served at once."""
        crd = source if isinstance(source, dict) else load_yaml_documents(source)[0]

        def run(emu: Emulator) -> dict[str, Any]:
            return copy.deepcopy(emu.install_crd(crd, lenient=lenient))

        return self.call(run)

    def install_project_crd(self, *, lenient: bool = False) -> dict[str, Any]:
        return self.install_crd(PROJECT_CRD, lenient=lenient)

    def install_keda_crd(self) -> dict[str, Any]:
        """keda.sh/v1alpha1 ScaledObject (a trimmed copy of KEDA's CRD: scaleTargetRef, triggers, bounds)."""
        return self.install_crd(KEDA_CRD)

    # ------------------------------------------------------------ kubelet

    def set_pod_log(self, namespace: str, pod: str, text: str, container: str | None = None) -> None:
        """What `GET .../pods/POD/log` returns (for `container`, or any container when None)."""
        self.call(lambda emu: emu.logs.__setitem__((namespace, pod, container or ""), text))

    def pods(self, namespace: str, selector: str | dict[str, Any] | None = None) -> Objects:
        """Pods matching a label-selector string, a matchLabels dict or a LabelSelector dict."""
        if isinstance(selector, dict):
            sel = (
                selector
                if ("matchLabels" in selector or "matchExpressions" in selector)
                else {"matchLabels": selector}
            )
            parsed = LabelSelector.from_dict(sel)
            return [
                p for p in self.list("v1", "Pod", namespace) if parsed.matches(p["metadata"].get("labels"))
            ]
        return self.list("v1", "Pod", namespace, selector)

    # ------------------------------------------------------------ job controller

    def start_job(self, namespace: str, name: str) -> dict[str, Any]:
        """Mark a Job started (startTime, active pods) and create its running pods, as the controller does."""
        return self.call(start_job, namespace, name)

    def complete_job(
        self,
        namespace: str,
        name: str,
        *,
        succeeded: bool = True,
        termination_message: str | dict[str, Any] | Sequence[str | dict[str, Any] | None] | None = None,
        log: str | Sequence[str] | None = None,
        reason: str | None = None,
        message: str | None = None,
        exit_code: int | None = None,
    ) -> dict[str, Any]:
        """Finish a Job like the job controller and kubelet would: terminated pod(s) + Job conditions.

        One pod per completion index for Indexed Jobs (else one pod). `termination_message` (a dict is
        JSON-encoded; a sequence gives one per pod) lands in the pod's
        containerStatuses[0].state.terminated.message; `log` in the pod's log. The Job gets
        succeeded/failed counts, start/completion times and a Complete (or Failed, reason
        `reason` or BackoffLimitExceeded) condition. Returns the Job.
        """
        return self.call(
            complete_job, namespace, name, succeeded, termination_message, log, reason, message, exit_code
        )

    # ------------------------------------------------------------ deployment controller

    def make_deployment_ready(
        self,
        namespace: str,
        name: str,
        ready: int | None = None,
        *,
        pod_ip: str | Sequence[str] = "127.0.0.1",
        container_port: int | Sequence[int] | None = None,
    ) -> dict[str, Any]:
        """Roll a Deployment out like its controller + kubelet: a ReplicaSet for the current template,
        spec.replicas pods (the first `ready` of them Ready, default all) with podIP `pod_ip` (one per
        pod if a sequence) and, if given, their first container port set to `container_port` (one per
        pod if a sequence: pods on 127.0.0.1 need distinct ports); old ReplicaSets scaled to 0 and their
        pods removed; status (observedGeneration, replicas, updated/ready/available, conditions
        Available and Progressing=NewReplicaSetAvailable) written. Returns the Deployment.
        """
        return self.call(deployment_ready, namespace, name, ready, pod_ip, container_port)

    def fail_deployment_progress(
        self, namespace: str, name: str, message: str | None = None
    ) -> dict[str, Any]:
        """Progressing=False, reason ProgressDeadlineExceeded (what the controller sets after
        progressDeadlineSeconds). Returns the Deployment."""
        return self.call(deployment_failed, namespace, name, message)
