"""One container as a local process: the command line and environment Kubernetes would give it.

Command: the container's `command` (else the image's ENTRYPOINT) followed by its `args` (else, only
when `command` is unset, the image's CMD), with `$(VAR)` references expanded from the container's
environment. Environment: the image's ENV, HOSTNAME, then `envFrom`, then `env` (values, `$(VAR)`
references, `valueFrom` fieldRef / resourceFieldRef / configMapKeyRef / secretKeyRef). Container paths in
both are rewritten to the pod's host folders (see volumes.py); the image's software folder is this
interpreter's environment (see images.py). The pod's network (its own IP) comes from the podnet shim.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cluster_box.api import Api
from cluster_box.images import Image
from cluster_box.volumes import PathMap

POD_IP_ENV = "CLUSTER_BOX_POD_IP"


class ContainerConfigError(Exception):
    """What the kubelet reports as CreateContainerConfigError (a missing ConfigMap/Secret key...)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` escapes, others stay."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", repl, text)


def _field_ref(pod: dict[str, Any], path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
    }
    if path not in simple:
        raise ContainerConfigError(f'unsupported fieldRef fieldPath "{path}"')
    return str(simple[path] or "")


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "m": 1e-3}


def quantity(value: str) -> float:
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    if not m:
        raise ContainerConfigError(f"invalid quantity {value!r}")
    return float(m.group(1)) * _UNITS.get(m.group(2), 1)


def _resource_ref(container: dict[str, Any], ref: dict[str, Any]) -> str:
    section, _, name = ref["resource"].partition(".")
    value = ((container.get("resources") or {}).get(section) or {}).get(name)
    if value is None:
        return "0"
    divisor = quantity(ref.get("divisor", "1"))
    return str(math.ceil(quantity(value) / divisor))


def _key_ref(api: Api, ns: str, kind: str, ref: dict[str, Any]) -> str | None:
    obj = api.get("v1", kind, ref["name"], ns)
    data = (obj or {}).get("data") or {}
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        what = "configmap" if kind == "ConfigMap" else "secret"
        if obj is None:
            raise ContainerConfigError(f'{what} "{ref["name"]}" not found')
        raise ContainerConfigError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")
    value = data[ref["key"]]
    return base64.b64decode(value).decode() if kind == "Secret" else str(value)


def _env_from(api: Api, ns: str, source: dict[str, Any]) -> dict[str, str]:
    prefix = source.get("prefix", "")
    for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
        if key in source:
            ref = source[key]
            obj = api.get("v1", kind, ref["name"], ns)
            if obj is None:
                if ref.get("optional"):
                    return {}
                raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
            data = obj.get("data") or {}
            if kind == "Secret":
                return {prefix + k: base64.b64decode(v).decode() for k, v in data.items()}
            return {prefix + k: str(v) for k, v in data.items()}
    raise ContainerConfigError(f"unsupported envFrom source {source}")


def spec_env(api: Api, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The variables the pod spec defines (envFrom, then env), in Kubernetes' order and expansion."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(_env_from(api, ns, source))
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = _field_ref(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            value = _resource_ref(container, source["resourceFieldRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref(api, ns, "ConfigMap", source["configMapKeyRef"])
        elif "secretKeyRef" in source:
            value = _key_ref(api, ns, "Secret", source["secretKeyRef"])
        else:
            raise ContainerConfigError(f"unsupported valueFrom {source}")
        if value is not None:
            env[name] = value
    return env


@dataclass
class Launch:
    """What to exec: argv (argv[0] resolved on the container's PATH) and the full environment."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


def launch(
    api: Api,
    pod: dict[str, Any],
    container: dict[str, Any],
    image: Image,
    paths: PathMap,
    pod_dir: Path,
    shim: Path,
) -> Launch:
    defined = spec_env(api, pod, container)
    if "command" in container:
        argv = [*container["command"], *(container.get("args") or [])]
    else:
        argv = [*image.entrypoint, *(container.get("args", image.cmd))]
    if not argv:
        raise ContainerConfigError("no command specified")
    argv = [expand(a, defined) for a in argv]
    for image_path, host_path in image.filesystem().items():
        if paths.host(image_path) is None:
            paths.add(image_path, host_path)
    env = {**image.env, "HOSTNAME": pod["metadata"]["name"], **defined}
    env = {k: paths.rewrite(v) for k, v in env.items()}
    argv = [paths.rewrite(a) for a in argv]
    if "/" not in argv[0]:
        found = shutil.which(argv[0], path=env.get("PATH", ""))
        if found is None:
            raise FileNotFoundError(f'exec: "{argv[0]}": executable file not found in $PATH')
        argv[0] = found
    env[POD_IP_ENV] = (pod.get("status") or {}).get("podIP") or ""
    env["LD_PRELOAD"] = ":".join(p for p in (str(shim), env.get("LD_PRELOAD", "")) if p)
    cwd = Path(paths.rewrite(container["workingDir"])) if container.get("workingDir") else pod_dir
    return Launch(argv=argv, env=env, cwd=cwd)


@dataclass
class Process:
    """A started container process; its log goes to `log_path`."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    started_at: str
    _log: IO[bytes] | None = field(default=None, repr=False)
    term_sent: float | None = None
    killed: bool = False

    @classmethod
    def start(cls, spec: Launch, log_path: Path, started_at: str) -> Process:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        popen = subprocess.Popen(
            spec.argv,
            env=spec.env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches every process of the container
        )
        return cls(popen=popen, log_path=log_path, started_at=started_at, _log=log)

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None and self._log is not None:
            self._log.close()
            self._log = None
        return code

    def exit_code(self) -> int:
        """The container's exit code as Kubernetes reports it: 128 + signal for a killed process."""
        code = self.popen.returncode
        return 128 - code if code is not None and code < 0 else int(code or 0)

    def terminate(self) -> None:
        """SIGTERM to the container's main process (PID 1 in a container)."""
        if self.poll() is None and self.term_sent is None:
            self.term_sent = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to every process of the container."""
        if self.poll() is None or not self.killed:
            self.killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self.poll()


def termination_message(path: Path, log_path: Path, policy: str, exit_code: int) -> str | None:
    """The termination message: the file (4096 bytes at most), else with FallbackToLogsOnError and a
    failure the log's last 80 lines / 2048 bytes (the kubelet's limits)."""
    try:
        text = path.read_bytes()[:4096].decode(errors="replace")
    except OSError:
        text = ""
    if not text and policy == "FallbackToLogsOnError" and exit_code != 0:
        try:
            tail = log_path.read_bytes()[-2048:].decode(errors="replace")
        except OSError:
            tail = ""
        text = "\n".join(tail.splitlines()[-80:])
    return text or None
