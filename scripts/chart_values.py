"""The Helm chart's values as a typed model: the one source of values.yaml, values.schema.json and CRDs.

    python scripts/chart_values.py --write   # regenerate values.yaml, values.schema.json, the CRD template
    python scripts/chart_values.py --check   # exit 1 when a generated chart file is stale (CI)

Every value is declared once here with its description, bounds, default and an example. From that this
script writes `values.yaml` (each key preceded by a comment: what it is, its default, an example), the
JSON schema helm checks values against (`additionalProperties: false` everywhere, so a misspelt key is
refused, and bounds such as `replicas >= 0`), and turns `crds/modeldeployments.trtforge.dev.yaml`, itself
generated from the ModelDeployment models, into the chart's CRD template (behind `crds.enabled`, kept on
uninstall with `crds.keep`) so that no hand-kept copy exists.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "trtforge"
CRD_SOURCE = ROOT / "crds" / "modeldeployments.trtforge.dev.yaml"
# The CRD is a template (cert-manager style) so that `helm upgrade` upgrades it; Helm never touches crds/.
CRD_COPY = CHART / "templates" / "crds" / CRD_SOURCE.name

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/ (unsigned)
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
STORAGE_URI = r"^$|^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.*|s3://.+)$"


def field(default: Any, description: str, example: Any, **kwargs: Any) -> Any:
    """A documented value: description and example end up in values.yaml and in the schema."""
    return Field(default=default, description=description, examples=[example], **kwargs)


def group(model: type[BaseModel], description: str) -> Any:
    return Field(default_factory=model, description=description)


class Values(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Image(Values):
    repository: str = field(
        "ghcr.io/trtforge/operator",
        "Image repository.",
        "registry.example.com/ml/trtforge-operator",
        min_length=1,
    )
    tag: str = field("", "Image tag; empty means the chart's appVersion.", "0.1.0")
    digest: str = field(
        "",
        "Image digest; when set it is used instead of the tag (immutable deployments).",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        pattern=r"^$|^sha256:[a-f0-9]{64}$",
    )
    pull_policy: str = field(
        "IfNotPresent", "Image pull policy.", "Always", pattern=r"^(Always|IfNotPresent|Never)$"
    )


class WorkloadImage(Values):
    repository: str = field(
        "",
        "Image repository (e.g. a mirror in your registry).",
        "registry.example.com/mirror/IMAGE",
        min_length=1,
    )
    tag: str = field("", "Image tag; empty means the chart's appVersion.", "0.1.0")


def workload_image(name: str, what: str) -> Any:
    return Field(
        default_factory=lambda: WorkloadImage(repository=f"ghcr.io/trtforge/{name}"),
        description=what,
    )


class WorkloadImages(Values):
    trainer: WorkloadImage = workload_image(
        "trainer", "Image of the training Jobs (TensorFlow GPU, `trtforge train`)."
    )
    converter: WorkloadImage = workload_image(
        "converter",
        "Image of the CPU conversion Jobs (backends tensorrt-rtx and onnxruntime, `trtforge convert`).",
    )
    converter_tensorrt: WorkloadImage = workload_image(
        "converter-tensorrt",
        "Image of the GPU conversion Jobs of backend tensorrt (full TensorRT, a Job per GPU architecture).",
    )
    server: WorkloadImage = workload_image(
        "server", "Image of the serving pods (TensorRT runtime + pycuda, `trtforge serve`)."
    )
    pull_policy: str = field(
        "IfNotPresent",
        "Pull policy of the Job and serving containers the operator creates.",
        "Always",
        pattern=r"^(Always|IfNotPresent|Never)$",
    )


class ServiceAccount(Values):
    create: bool = field(True, "Create the operator's ServiceAccount.", False)
    name: str = field(
        "", "Name of the ServiceAccount; empty means the release's full name.", "trtforge-operator"
    )
    annotations: dict[str, str] = field(
        {}, "Annotations of the ServiceAccount.", {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}
    )


class Rbac(Values):
    create: bool = field(
        True,
        "Create the ClusterRole/Role and bindings with exactly the verbs the operator uses.",
        False,
    )


class LeaderElection(Values):
    lease_name: str = field(
        "",
        "Name of the coordination.k8s.io/v1 Lease in the release namespace that the replicas campaign for "
        "(TRTFORGE_LEASE_NAME); empty means the release's full name.",
        "trtforge",
        pattern=r"^$|" + DNS_SUBDOMAIN,
        max_length=253,
    )
    lease_duration_seconds: int = field(
        15,
        "How long a Lease that is not renewed blocks the standbys (TRTFORGE_LEASE_DURATION_SECONDS); "
        "a crashed leader is replaced after about this long.",
        30,
        ge=2,
        le=3600,
    )
    renew_deadline_seconds: int = field(
        10,
        "A leader that could not renew for this long stops acting (TRTFORGE_RENEW_DEADLINE_SECONDS); "
        "less than leaseDurationSeconds.",
        20,
        ge=1,
        le=3600,
    )
    retry_period_seconds: int = field(
        2,
        "How often the leader renews and the standbys try to take over (TRTFORGE_RETRY_PERIOD_SECONDS).",
        4,
        ge=1,
        le=600,
    )


class Autoscaler(Values):
    enabled: bool = field(
        True,
        "Let the operator autoscale ModelDeployments (TRTFORGE_AUTOSCALER_ENABLED); false: every serving "
        "Deployment runs spec.serving.replicas.",
        False,
    )
    hpa: bool = field(
        True,
        "Grant the operator HorizontalPodAutoscaler rights and enable serving.autoscaling.mode hpa "
        "(TRTFORGE_AUTOSCALER_MODES); without it a ModelDeployment in mode hpa fails.",
        False,
    )
    keda: bool = field(
        False,
        "Grant the operator KEDA ScaledObject rights and enable mode keda (TRTFORGE_AUTOSCALER_MODES; "
        "needs KEDA installed).",
        True,
    )
    prometheus_url: str = field(
        "http://prometheus-operated.monitoring.svc:9090",
        "Prometheus that KEDA ScaledObjects query in mode keda (TRTFORGE_PROMETHEUS_URL).",
        "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        pattern=r"^https?://.+",
    )
    scrape_timeout: float = field(
        1.0,
        "Built-in autoscaler: time-out in seconds of one serving pod's /metrics scrape "
        "(TRTFORGE_AUTOSCALER_SCRAPE_TIMEOUT).",
        2.0,
        gt=0.0,
        le=30.0,
    )


class Pvc(Values):
    create: bool = field(
        True,
        "Let the operator create the default store's PersistentVolumeClaim in a ModelDeployment's namespace "
        "when it is missing, before any Job (TRTFORGE_CLAIM_CREATE). The claim belongs to the namespace, "
        "not to the ModelDeployment or the release: deleting either keeps the artifacts. false: a "
        "ModelDeployment whose namespace lacks the claim fails, naming the claim and the namespace.",
        False,
    )
    name: str = field(
        "trtforge-artifacts",
        "Name of the claim (the default storage URI is pvc://NAME/).",
        "ml-artifacts",
        pattern=DNS_LABEL,
        max_length=63,
    )
    access_mode: str = field(
        "ReadWriteOnce",
        "Access mode of a created claim (TRTFORGE_CLAIM_ACCESS_MODE); use ReadWriteMany on multi-node "
        "clusters so Jobs and servers on different nodes share artifacts.",
        "ReadWriteMany",
        pattern=r"^(ReadWriteOnce|ReadWriteMany|ReadWriteOncePod)$",
    )
    storage_class_name: str = field(
        "",
        "StorageClass of a created claim (TRTFORGE_CLAIM_STORAGE_CLASS); empty means the cluster's default "
        "class.",
        "efs-sc",
        pattern=r"^$|" + DNS_SUBDOMAIN,
        max_length=253,
    )
    size: str = field(
        "20Gi", "Requested size of a created claim (TRTFORGE_CLAIM_SIZE).", "200Gi", pattern=QUANTITY
    )
    annotations: dict[str, str] = field(
        {},
        "Annotations of a created claim (TRTFORGE_CLAIM_ANNOTATIONS).",
        {"backup.example.com/enabled": "true"},
    )


class S3(Values):
    existing_secret: str = field(
        "",
        "Secret (in each ModelDeployment's namespace) with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
        "optionally AWS_ENDPOINT_URL, used for s3:// storage when a ModelDeployment names no "
        "spec.storage.secretRef (TRTFORGE_STORAGE_SECRET).",
        "trtforge-s3",
        pattern=r"^$|" + DNS_SUBDOMAIN,
        max_length=253,
    )


class Storage(Values):
    uri: str = field(
        "",
        "Default artifact store of ModelDeployments without spec.storage (TRTFORGE_STORAGE_URI); empty "
        "means pvc://<existingClaim or pvc.name>/.",
        "s3://ml-artifacts/trtforge/",
        pattern=STORAGE_URI,
    )
    existing_claim: str = field(
        "",
        "Use this existing PersistentVolumeClaim (in the ModelDeployments' namespaces) instead of "
        "creating one.",
        "shared-models",
        pattern=r"^$|" + DNS_LABEL,
        max_length=63,
    )
    mount_path: str = field(
        "/artifacts",
        "Where Jobs and servers mount the artifact store (TRTFORGE_ARTIFACTS_MOUNT).",
        "/data",
        pattern=r"^/.*$",
    )
    pvc: Pvc = group(Pvc, "The default store's claim, one per ModelDeployment namespace.")
    s3: S3 = group(S3, "S3-compatible object storage credentials.")


class Crds(Values):
    enabled: bool = field(
        True,
        "Install and upgrade the ModelDeployment CRD with the release (a template, so `helm upgrade` "
        "applies schema changes; Helm never upgrades crds/). false: manage it yourself "
        "(kubectl apply -f crds/).",
        False,
    )
    keep: bool = field(
        True,
        "Keep the CRD, and with it every ModelDeployment, when the release is uninstalled "
        "(helm.sh/resource-policy: keep).",
        False,
    )


class ChartValues(Values):
    """All values of charts/trtforge."""

    name_override: str = field("", "Replaces the chart name in object names.", "forge", max_length=63)
    fullname_override: str = field("", "Replaces the full name (release-chart) of objects.", "trtforge")
    crds: Crds = group(Crds, "The ModelDeployment CustomResourceDefinition.")
    image: Image = group(Image, "The operator's image.")
    image_pull_secrets: list[str] = field(
        [],
        "Names of image pull Secrets, used by the operator pod and passed on to every Job and serving "
        "pod (TRTFORGE_IMAGE_PULL_SECRETS).",
        ["regcred"],
    )
    workload_images: WorkloadImages = group(WorkloadImages, "Images of the pods the operator creates.")
    replicas: int = field(
        1,
        "Operator replicas; with more than 1, one holds the Lease and acts, the others watch and stand by.",
        2,
        ge=0,
        le=10,
    )
    leader_election: LeaderElection = group(
        LeaderElection,
        "Leader election on a Lease (client-go semantics): only the leader reconciles and autoscales.",
    )
    watch_namespaces: list[str] = field(
        [],
        "Namespaces to watch; empty means all (ClusterRole). When set, a Role/RoleBinding per namespace.",
        ["ml-prod", "ml-staging"],
        json_schema_extra={"uniqueItems": True, "items": {"type": "string", "pattern": DNS_LABEL}},
    )
    worker_limit: int = field(
        20, "Concurrent kopf handler workers (TRTFORGE_WORKER_LIMIT).", 50, ge=1, le=1000
    )
    health_port: int = field(
        8090, "Port of kopf's liveness endpoint /healthz (TRTFORGE_HEALTH_PORT).", 8091, ge=1024, le=65535
    )
    log_level: str = field("INFO", "Operator log level.", "DEBUG", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    resync_seconds: float = field(
        120.0,
        "Safety-net resync period of every ModelDeployment in seconds (TRTFORGE_RESYNC_SECONDS); changes of "
        "children are handled at once through watches.",
        300.0,
        ge=1.0,
        le=86400.0,
    )
    job_ttl_seconds: int = field(
        86400,
        "ttlSecondsAfterFinished of training and conversion Jobs (TRTFORGE_JOB_TTL_SECONDS).",
        3600,
        ge=0,
        le=31536000,
    )
    workload_service_account: str = field(
        "default",
        "ServiceAccount of the Jobs and serving pods; it must exist in each ModelDeployment's namespace "
        "(TRTFORGE_WORKLOAD_SERVICE_ACCOUNT).",
        "trtforge-workload",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )
    autoscaler: Autoscaler = group(Autoscaler, "Autoscaling of ModelDeployments.")
    storage: Storage = group(Storage, "Artifact storage (models and engines).")
    service_account: ServiceAccount = group(ServiceAccount, "The operator's ServiceAccount.")
    rbac: Rbac = group(Rbac, "RBAC objects.")
    resources: dict[str, Any] = field(
        {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"memory": "512Mi"}},
        "Resources of the operator container.",
        {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    )
    priority_class_name: str = field(
        "", "PriorityClass of the operator pods.", "system-cluster-critical", max_length=253
    )
    node_selector: dict[str, str] = field(
        {}, "Node labels for the operator pods.", {"kubernetes.io/os": "linux"}
    )
    tolerations: list[dict[str, Any]] = field(
        [],
        "Tolerations of the operator pods.",
        [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    )
    affinity: dict[str, Any] = field(
        {},
        "Affinity of the operator pods (with replicas > 1 consider pod anti-affinity across nodes).",
        {"nodeAffinity": {}},
    )
    pod_annotations: dict[str, str] = field(
        {},
        "Extra annotations of the operator pods.",
        {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
    )
    pod_labels: dict[str, str] = field({}, "Extra labels of the operator pods.", {"team": "ml"})
    extra_env: list[dict[str, Any]] = field(
        [],
        "Extra environment variables of the operator container.",
        [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
    )


# ------------------------------------------------------------------------------------------ generation


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Inline `$ref`s and drop pydantic's titles: the schema reads like the values it checks."""
    if isinstance(node, list):
        return [_inline(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
        target.update({k: v for k, v in node.items() if k != "$ref"})
        return _inline(target, defs)
    out = {k: _inline(v, defs) for k, v in node.items() if k != "title"}
    if out.get("type") == "object" and "properties" in out:
        out["additionalProperties"] = False
    return out


def build_schema() -> dict[str, Any]:
    raw = ChartValues.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema = _inline(raw, defs)
    # the chart's own object defaults are filled from values.yaml by helm; keep only the docs here
    return {"$schema": "http://json-schema.org/draft-07/schema#", **schema}


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...").strip()


def _comment(text: str, pad: str) -> list[str]:
    return [f"{pad}# {line}" for line in textwrap.wrap(text, width=108 - len(pad))]


def _render(model: BaseModel, pad: str = "") -> list[str]:
    lines: list[str] = []
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        value = getattr(model, name)
        if lines and not pad:
            lines.append("")
        lines += _comment(info.description or "", pad)
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{key}:")
            lines += _render(value, pad + "  ")
            continue
        plain = value.model_dump() if isinstance(value, BaseModel) else value
        lines.append(f"{pad}# Default: {_scalar(plain)}")
        if info.examples:
            lines.append(f"{pad}# Example: {_scalar(info.examples[0])}")
        if isinstance(plain, dict | list) and plain:
            lines.append(f"{pad}{key}:")
            block = yaml.safe_dump(plain, default_flow_style=False, sort_keys=False)
            lines += [f"{pad}  {line}" for line in block.splitlines()]
        else:
            lines.append(f"{pad}{key}: {_scalar(plain)}")
    return lines


def build_values() -> str:
    head = [
        "# Values of the trtforge chart. GENERATED from scripts/chart_values.py by",
        "#   python scripts/chart_values.py --write   (or: bash scripts/generate.sh)",
        "# Do not edit by hand; CI fails when this file is stale. values.schema.json refuses unknown keys.",
        "",
    ]
    return "\n".join([*head, *_render(ChartValues())]) + "\n"


def crd_template(crd: str) -> str:
    """The CRD file as a chart template: behind crds.enabled, with the chart's labels and the keep policy.

    The document itself is the generated CRD, unchanged but for its metadata; any `{{` in it (none today)
    would be escaped so that Go templates never read the schema.
    """
    body = "\n".join(line for line in crd.splitlines() if not line.startswith("#"))
    body = body.replace("{{", '{{ "{{" }}')
    head, sep, rest = body.partition("\n  labels:\n")
    if not sep:
        raise SystemExit(f"{CRD_SOURCE}: no metadata.labels to extend")
    lines = rest.splitlines()
    while lines and lines[0].startswith("    "):  # the CRD's own labels: the chart's replace them
        lines.pop(0)
    meta = [
        "  labels:",
        '    {{- include "trtforge.commonLabels" . | nindent 4 }}',
        "    app.kubernetes.io/component: crd",
        "  {{- if .Values.crds.keep }}",
        "  annotations:",
        "    # helm uninstall leaves the CRD (and every ModelDeployment) in place",
        "    helm.sh/resource-policy: keep",
        "  {{- end }}",
    ]
    return "\n".join(
        [
            "{{- /* GENERATED from crds/modeldeployments.trtforge.dev.yaml by scripts/chart_values.py:",
            "do not edit. A template, not crds/, so that helm upgrade upgrades it (as cert-manager). */ -}}",
            "{{- if .Values.crds.enabled }}",
            head,
            *meta,
            *lines,
            "{{- end }}",
            "",
        ]
    )


def outputs() -> dict[Path, str]:
    return {
        CHART / "values.yaml": build_values(),
        CHART / "values.schema.json": json.dumps(build_schema(), indent=2) + "\n",
        CRD_COPY: crd_template(CRD_SOURCE.read_text()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="regenerate the files (default)")
    mode.add_argument("--check", action="store_true", help="fail when a generated file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        names = ", ".join(str(p) for p in stale)
        print(f"stale: {names}; run: python scripts/chart_values.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
