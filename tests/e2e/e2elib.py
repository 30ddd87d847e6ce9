"""Helpers of the real-cluster end-to-end tests: settings from env, the cluster probe, helm/kubectl, waits.

The e2e tests drive a real Kubernetes cluster (kind, or a GPU cluster) through the official `kubernetes`
client and the real `helm`/`kubectl` binaries. Everything a run may need to change (images, GPU or CPU,
names, time-outs) is an environment variable read once into `E2ESettings`, never at import time.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "trtforge"
CRD = REPO / "crds" / "modeldeployments.trtforge.dev.yaml"
EXAMPLE = REPO / "examples" / "digits.yaml"

GROUP, VERSION, PLURAL = "trtforge.dev", "v1alpha1", "modeldeployments"
MD_LABEL = "trtforge.dev/modeldeployment"
TRUE = {"1", "true", "yes", "on"}

T = TypeVar("T")


class E2EConfigError(ValueError):
    """An e2e environment variable holds a value the tests cannot use."""


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise E2EConfigError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if value <= 0:
        raise E2EConfigError(f"{name} must be > 0, got {raw!r}")
    return value


def _env_list(env: dict[str, str], name: str) -> list[str]:
    return [item.strip() for item in env.get(name, "").split(",") if item.strip()]


@dataclass(frozen=True)
class E2ESettings:
    """What one e2e run uses; every field comes from a TRTFORGE_E2E_* variable (docs/e2e.md)."""

    kubeconfig: str
    image_registry: str = "ghcr.io"
    image_tag: str = ""  # empty: the chart's appVersion
    image_pull_policy: str = "IfNotPresent"
    gpu: bool = False
    backend: str = ""  # empty: the example's backend on CPU, tensorrt with GPUs
    compute_capabilities: list[str] = field(default_factory=list)  # empty: from the GPU nodes' labels
    namespace: str = ""
    release: str = ""
    model_name: str = "digits"
    epochs: int | None = None
    helm_args: list[str] = field(default_factory=list)
    keep_on_failure: bool = False
    apply_crd: bool = True
    connect_timeout: float = 5.0
    install_timeout: float = 300.0
    ready_timeout: float = 1800.0
    scale_timeout: float = 300.0
    delete_timeout: float = 300.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> E2ESettings:
        env = dict(os.environ if env is None else env)
        suffix = secrets.token_hex(3)
        epochs_raw = env.get("TRTFORGE_E2E_EPOCHS", "").strip()
        if epochs_raw and not epochs_raw.isdigit():
            raise E2EConfigError(f"TRTFORGE_E2E_EPOCHS must be a positive integer, got {epochs_raw!r}")
        return cls(
            kubeconfig=env.get("KUBECONFIG", ""),
            image_registry=env.get("TRTFORGE_E2E_IMAGE_REGISTRY", "").strip().rstrip("/") or "ghcr.io",
            image_tag=env.get("TRTFORGE_E2E_IMAGE_TAG", "").strip(),
            image_pull_policy=env.get("TRTFORGE_E2E_IMAGE_PULL_POLICY", "").strip() or "IfNotPresent",
            gpu=env.get("TRTFORGE_E2E_GPU", "").strip().lower() in TRUE,
            backend=env.get("TRTFORGE_E2E_BACKEND", "").strip(),
            compute_capabilities=_env_list(env, "TRTFORGE_E2E_COMPUTE_CAPABILITIES"),
            namespace=env.get("TRTFORGE_E2E_NAMESPACE", "").strip() or f"trtforge-e2e-{suffix}",
            release=env.get("TRTFORGE_E2E_RELEASE", "").strip() or f"e2e-{suffix}",
            model_name=env.get("TRTFORGE_E2E_MODEL_NAME", "").strip() or "digits",
            epochs=int(epochs_raw) if epochs_raw else None,
            helm_args=shlex.split(env.get("TRTFORGE_E2E_HELM_ARGS", "")),
            keep_on_failure=env.get("TRTFORGE_E2E_KEEP_ON_FAILURE", "").strip().lower() in TRUE,
            apply_crd=env.get("TRTFORGE_E2E_APPLY_CRD", "1").strip().lower() in TRUE,
            connect_timeout=_env_float(env, "TRTFORGE_E2E_CONNECT_TIMEOUT", 5.0),
            install_timeout=_env_float(env, "TRTFORGE_E2E_INSTALL_TIMEOUT", 300.0),
            ready_timeout=_env_float(env, "TRTFORGE_E2E_READY_TIMEOUT", 1800.0),
            scale_timeout=_env_float(env, "TRTFORGE_E2E_SCALE_TIMEOUT", 300.0),
            delete_timeout=_env_float(env, "TRTFORGE_E2E_DELETE_TIMEOUT", 300.0),
        )

    def image(self, name: str) -> str:
        """Repository of image `name` as docs/install.md builds it: REGISTRY/trtforge/NAME."""
        return f"{self.image_registry}/trtforge/{name}"

    def effective_backend(self, example_backend: str) -> str:
        if self.backend:
            return self.backend
        return "tensorrt" if self.gpu else example_backend


def probe_cluster(kubeconfig: str, timeout: float) -> str | None:
    """None when the cluster answers /version within `timeout`, else why the e2e tests are skipped."""
    if not kubeconfig:
        return "KUBECONFIG is not set: the e2e tests need a real cluster (see docs/e2e.md)"
    from kubernetes import client, config  # imported here: collection of other tests stays light

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except Exception as exc:  # any load failure means: no usable cluster
        return f"KUBECONFIG={kubeconfig} cannot be loaded: {type(exc).__name__}: {exc}"
    configuration.retries = 0  # one attempt: the time-out is the whole budget of the probe
    host = configuration.host
    api = client.ApiClient(configuration)
    try:
        with warnings.catch_warnings():  # a kubeconfig with insecure-skip-tls-verify warns on every request
            warnings.simplefilter("ignore")
            info = client.VersionApi(api).get_code(_request_timeout=(timeout, timeout))
    except client.ApiException as exc:  # reached something that is not a usable API server (proxy, 401...)
        return (
            f"cluster at {host} (KUBECONFIG={kubeconfig}) is unreachable: GET /version answered "
            f"HTTP {exc.status} {exc.reason}"
        )
    except Exception as exc:  # connection refused, DNS, TLS, time-out
        reason = str(exc).splitlines()[0][:200]
        return f"cluster at {host} (KUBECONFIG={kubeconfig}) is unreachable within {timeout:g}s: {reason}"
    finally:
        api.close()
    return None if info.git_version else f"cluster at {host} answered /version without a version"


def find_tool(name: str) -> str | None:
    """The binary scripts/tools.sh fetched into .tools/bin, else one on PATH."""
    local = REPO / ".tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


@dataclass(frozen=True)
class Tool:
    """A CLI binary (helm or kubectl) run against the cluster of KUBECONFIG."""

    binary: str
    env: dict[str, str]

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            command = shlex.join([Path(self.binary).name, *args])
            raise AssertionError(f"`{command}` exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc


def tool_env(home: Path, kubeconfig: str) -> dict[str, str]:
    env = dict(os.environ, KUBECONFIG=kubeconfig)
    for var in ("CACHE", "CONFIG", "DATA"):  # helm keeps its state out of the user's home
        env[f"HELM_{var}_HOME"] = str(home / var.lower())
    return env


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 2.0,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns a value that is not None; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            detail = describe() if describe else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{detail}")
        time.sleep(interval)


FORWARD_LINE = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")


@contextlib.contextmanager
def port_forward(
    kubectl: Tool, namespace: str, target: str, remote_ports: list[int], timeout: float = 60.0
) -> Iterator[dict[int, int]]:
    """`kubectl port-forward TARGET :PORT...` -> {remote port: local port}; the subprocess ends on exit."""
    args = [kubectl.binary, "port-forward", "-n", namespace, "--address", "127.0.0.1", target]
    args += [f":{port}" for port in remote_ports]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=kubectl.env
    )
    ports: dict[int, int] = {}
    seen: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while len(ports) < len(remote_ports):
            if time.monotonic() > deadline:
                raise AssertionError(f"kubectl port-forward {target} did not start: {''.join(seen)}")
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"kubectl port-forward {target} exited {proc.wait()}: {''.join(seen)}")
            seen.append(line)
            match = FORWARD_LINE.search(line)
            if match:
                ports[int(match.group(2))] = int(match.group(1))
        yield ports
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_path(obj: Any, *keys: str) -> Any:
    """obj[k1][k2]... or None when a key is missing."""
    for key in keys:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj
