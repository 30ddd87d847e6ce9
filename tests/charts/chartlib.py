"""Helpers of the chart tests: run helm, validate rendered manifests offline, check pod security.

Kept apart from the tests so that the checks (Pod Security Standards "restricted", RBAC without
wildcards, offline schema validation) read as one definition each, used on the chart's own objects and on
the Jobs/Deployments the operator's reconcilers generate.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "trtforge"
VALUE_SETS = Path(__file__).resolve().parent / "values"
KUBE_VERSION = (
    "1.35.0"  # the kubectl/helm generation of scripts/tools.sh; kubernetes-validate has its schemas
)
UID = 10001


def find_tool(name: str) -> str | None:
    """The binary scripts/tools.sh fetched into .tools/bin, else one on PATH."""
    local = REPO / ".tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


@dataclass(frozen=True)
class Helm:
    binary: str
    home: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{var}_HOME"] = str(self.home / var.lower())
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args], capture_output=True, text=True, env=self.env(), timeout=120, check=False
        )

    def template(
        self,
        *value_files: str | Path,
        sets: Sequence[str] = (),
        release: str = "forge",
        namespace: str = "trtforge-system",
        include_crds: bool = True,
    ) -> list[dict[str, Any]]:
        """`helm template` -> the rendered objects; fails the test with helm's message on an error."""
        args = self.template_args(
            *value_files, sets=sets, release=release, namespace=namespace, include_crds=include_crds
        )
        return copy.deepcopy(self._render(tuple(args)))

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Helm per session; renders are pure
    def _render(self, args: tuple[str, ...]) -> list[dict[str, Any]]:
        proc = self.run(*args)
        if proc.returncode != 0:
            raise AssertionError(f"helm template failed:\n{proc.stderr}")
        return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]

    def template_args(
        self,
        *value_files: str | Path,
        sets: Sequence[str] = (),
        release: str = "forge",
        namespace: str = "trtforge-system",
        include_crds: bool = True,
    ) -> list[str]:
        args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
        if include_crds:
            args.append("--include-crds")
        for f in value_files:
            args += ["-f", str(f)]
        for s in sets:
            args += ["--set", s]
        return args


def value_sets() -> list[Path]:
    return sorted(VALUE_SETS.glob("*.yaml"))


# ------------------------------------------------------------------------------------- validation


def crd_schemas(docs: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD version among docs."""
    out = {}
    for doc in docs:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for version in spec["versions"]:
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            out[key] = version["schema"]["openAPIV3Schema"]
    return out


def _k8s_to_jsonschema(node: Any) -> Any:
    """OpenAPI v3 as Kubernetes uses it -> plain JSON schema (int-or-string, preserve-unknown)."""
    if isinstance(node, list):
        return [_k8s_to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _k8s_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    # OpenAPI 3.0 exclusive bounds are booleans beside minimum/maximum; JSON Schema's are the numbers
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if out.get(exclusive) is True and bound in out:
            out[exclusive] = out.pop(bound)
        elif out.get(exclusive) is False:
            out.pop(exclusive)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if (
        out.get("type") == "object"
        and "properties" in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        # structural schemas prune unknown fields; a manifest that relies on that is a mistake
        out.setdefault("additionalProperties", False)
    return out


def validate_objects(docs: Sequence[dict[str, Any]], extra_crds: Sequence[dict[str, Any]] = ()) -> list[str]:
    """Every object validated offline: built-in kinds with kubernetes-validate (strict: unknown fields are
    errors), custom kinds against the openAPIV3Schema of their CRD. Returns the errors, one line each."""
    errors: list[str] = []
    schemas = crd_schemas([*docs, *extra_crds])
    for doc in docs:
        kind = doc.get("kind", "?")
        name = doc.get("metadata", {}).get("name", "?")
        where = f"{kind}/{name}"
        key = (doc.get("apiVersion", ""), kind)
        if key in schemas:
            schema = _k8s_to_jsonschema(schemas[key])
            # the API server owns these root fields of every custom resource
            schema["properties"].update(
                apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"}
            )
            for error in jsonschema.Draft202012Validator(schema).iter_errors(doc):
                errors.append(f"{where}: {'/'.join(map(str, error.path))}: {error.message}")
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: no schema for {key[0]} {kind} (neither built in nor a rendered CRD)")
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(map(str, exc.path))
            errors.append(f"{where}: {path}: {exc.message}")
    return errors


# ------------------------------------------------------------------------------------- pod security


RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "image",
}


def pod_templates(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod an object creates: Pods, workloads, Jobs, CronJobs."""
    kind = doc.get("kind")
    where = f"{kind}/{doc.get('metadata', {}).get('name')}"
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return [(where, spec)]
    if kind == "CronJob":
        return [(where, spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}:
        return [(where, spec["template"]["spec"])]
    return []


def restricted_violations(pod: dict[str, Any], where: str) -> list[str]:
    """Pod Security Standards "restricted" (baseline included), plus the project's rules: UID/GID 10001,
    read-only root filesystem, and a writable emptyDir on /tmp in every container."""
    bad: list[str] = []
    psc = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            bad.append(f"{where}: {flag} is set")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for name, volume in volumes.items():
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            bad.append(f"{where}: volume {name} uses {sorted(kinds - RESTRICTED_VOLUME_TYPES)}")
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined":
        bad.append(f"{where}: pod seccompProfile Unconfined")
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        if psc.get(key) != UID:
            bad.append(f"{where}: pod securityContext.{key} is {psc.get(key)!r}, want {UID}")
    for sysctl in psc.get("sysctls") or []:
        bad.append(f"{where}: sysctl {sysctl.get('name')} set")
    containers = [
        *(("container", c) for c in pod.get("containers") or []),
        *(("initContainer", c) for c in pod.get("initContainers") or []),
        *(("ephemeralContainer", c) for c in pod.get("ephemeralContainers") or []),
    ]
    if not pod.get("containers"):
        bad.append(f"{where}: no containers")
    for role, c in containers:
        at = f"{where} {role} {c.get('name')}"
        sc = c.get("securityContext") or {}

        def eff(key: str, sc: dict[str, Any] = sc) -> Any:
            return sc[key] if key in sc else psc.get(key)

        if sc.get("privileged"):
            bad.append(f"{at}: privileged")
        if eff("runAsNonRoot") is not True:
            bad.append(f"{at}: runAsNonRoot is not true")
        if eff("runAsUser") == 0:
            bad.append(f"{at}: runAsUser 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{at}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{at}: capabilities.drop lacks ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{at}: capabilities.add {caps.get('add')}")
        seccomp = (eff("seccompProfile") or {}).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            bad.append(f"{at}: seccompProfile is {seccomp!r}, want RuntimeDefault")
        if sc.get("procMount") not in (None, "Default"):
            bad.append(f"{at}: procMount {sc.get('procMount')}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            bad.append(f"{at}: hostPort")
        if sc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{at}: readOnlyRootFilesystem is not true")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
        tmp = mounts.get("/tmp")
        if role != "ephemeralContainer" and (
            tmp is None or "emptyDir" not in volumes.get(tmp["name"], {}) or tmp.get("readOnly")
        ):
            bad.append(f"{at}: no writable emptyDir mounted on /tmp")
    return bad


def rbac_wildcards(docs: Iterable[dict[str, Any]]) -> list[str]:
    bad = []
    for doc in docs:
        if doc.get("kind") not in {"ClusterRole", "Role"}:
            continue
        if doc.get("aggregationRule"):
            bad.append(f"{doc['kind']}/{doc['metadata']['name']}: aggregationRule")
        for rule in doc.get("rules") or []:
            for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                if any("*" in str(v) for v in rule.get(key) or []):
                    bad.append(f"{doc['kind']}/{doc['metadata']['name']}: wildcard in {key}: {rule}")
    return bad


def grants(
    docs: Iterable[dict[str, Any]], kind: str, namespace: str | None = None
) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples granted by the Roles/ClusterRoles of the given kind."""
    out = set()
    for doc in docs:
        if doc.get("kind") != kind:
            continue
        if namespace is not None and doc["metadata"].get("namespace") != namespace:
            continue
        for rule in doc.get("rules") or []:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        out.add((group, resource, verb))
    return out


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}


# ------------------------------------------------------------------ the operator's children


def operator_variants() -> list[tuple[str, dict[str, Any]]]:
    """examples/digits.yaml as given, and reshaped to exercise every kind of pod the operator makes."""
    digits = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    tensorrt = copy.deepcopy(digits)
    tensorrt["spec"]["engine"].update(backend="tensorrt", computeCapabilities=["8.9", "9.0"])
    tensorrt["spec"]["engine"]["resources"] = {"gpus": 1, "cpu": "4", "memory": "8Gi"}
    tensorrt["spec"]["placement"] = {
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    workers = copy.deepcopy(digits)
    workers["spec"]["model"]["train"].update(workers=3)
    workers["spec"]["serving"]["autoscaling"] = {"enabled": False}
    workers["spec"]["serving"]["replicas"] = 3
    s3 = copy.deepcopy(digits)
    s3["spec"]["storage"] = {"uri": "s3://bucket/forge/", "secretRef": {"name": "s3-creds"}}
    return [("digits", digits), ("tensorrt", tensorrt), ("workers", workers), ("s3", s3)]


def operator_children(env: dict[str, str], manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything the operator's reconcilers render for one ModelDeployment with the chart's settings."""
    from trtforge_operator.plan import Owner, Plan
    from trtforge_operator.reconcilers import configmap, convert_job, deployment, pdb, service, train_job
    from trtforge_operator.settings import OperatorSettings
    from trtforge_runtime.spec.load import parse_manifest

    md = parse_manifest(manifest)
    settings = OperatorSettings.from_env(env)
    owner = Owner(name=md.metadata.name, namespace="ml-prod", uid="0b8e4c8e-3c1f-4f0e-9d7a-1f2e3d4c5b6a")
    plan = Plan.build(owner, md.spec, settings)
    children: list[dict[str, Any] | None] = [
        configmap.config_map(plan, "train", plan.training),
        train_job.train_job(plan),
        train_job.train_service(plan),
        *convert_job.convert_jobs(plan),
        deployment.deployment(plan, deployment.desired_replicas(plan, None, None)),
        service.service(plan),
        pdb.pdb(plan),
    ]
    return [c for c in children if c is not None]
