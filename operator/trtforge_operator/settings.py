"""Operator settings: the TRTFORGE_* environment variables the Helm chart sets, as one typed object.

Read once when the operator starts (`OperatorSettings.from_env()`), never at import time, so tests and
the CLI can build settings from any mapping. A malformed value is a `SettingsError` naming the variable.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Collection, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from trtforge_runtime import __version__
from trtforge_runtime.spec.rules import QUANTITY

from trtforge_operator.errors import SettingsError

IMAGE_REPOSITORY = "ghcr.io/trtforge"


def _default_image(kind: str) -> str:
    return f"{IMAGE_REPOSITORY}/{kind}:{__version__}"


# field name -> environment variable
ENV_VARS: dict[str, str] = {
    "watch_namespaces": "TRTFORGE_WATCH_NAMESPACES",
    "trainer_image": "TRTFORGE_TRAINER_IMAGE",
    "converter_image": "TRTFORGE_CONVERTER_IMAGE",
    "converter_tensorrt_image": "TRTFORGE_CONVERTER_TENSORRT_IMAGE",
    "server_image": "TRTFORGE_SERVER_IMAGE",
    "image_pull_policy": "TRTFORGE_IMAGE_PULL_POLICY",
    "image_pull_secrets": "TRTFORGE_IMAGE_PULL_SECRETS",
    "storage_uri": "TRTFORGE_STORAGE_URI",
    "storage_secret": "TRTFORGE_STORAGE_SECRET",
    "artifacts_mount": "TRTFORGE_ARTIFACTS_MOUNT",
    "claim_create": "TRTFORGE_CLAIM_CREATE",
    "claim_size": "TRTFORGE_CLAIM_SIZE",
    "claim_access_mode": "TRTFORGE_CLAIM_ACCESS_MODE",
    "claim_storage_class": "TRTFORGE_CLAIM_STORAGE_CLASS",
    "claim_annotations": "TRTFORGE_CLAIM_ANNOTATIONS",
    "worker_limit": "TRTFORGE_WORKER_LIMIT",
    "health_port": "TRTFORGE_HEALTH_PORT",
    "leader_election": "TRTFORGE_LEADER_ELECTION",
    "lease_name": "TRTFORGE_LEASE_NAME",
    "lease_namespace": "POD_NAMESPACE",
    "pod_name": "POD_NAME",
    "lease_duration_seconds": "TRTFORGE_LEASE_DURATION_SECONDS",
    "renew_deadline_seconds": "TRTFORGE_RENEW_DEADLINE_SECONDS",
    "retry_period_seconds": "TRTFORGE_RETRY_PERIOD_SECONDS",
    "keep_config_revisions": "TRTFORGE_KEEP_CONFIG_REVISIONS",
    "workload_service_account": "TRTFORGE_WORKLOAD_SERVICE_ACCOUNT",
    "autoscaler_enabled": "TRTFORGE_AUTOSCALER_ENABLED",
    "autoscaler_modes": "TRTFORGE_AUTOSCALER_MODES",
    "resync_seconds": "TRTFORGE_RESYNC_SECONDS",
    "job_ttl_seconds": "TRTFORGE_JOB_TTL_SECONDS",
    "prometheus_url": "TRTFORGE_PROMETHEUS_URL",
    "autoscaler_scrape_timeout": "TRTFORGE_AUTOSCALER_SCRAPE_TIMEOUT",
}
LIST_FIELDS = ("watch_namespaces", "image_pull_secrets", "autoscaler_modes")
ClusterAutoscalerMode = Literal["hpa", "keda"]
ALL_CLUSTER_MODES: tuple[ClusterAutoscalerMode, ...] = ("hpa", "keda")


class OperatorSettings(BaseModel):
    """Everything the operator is configured with; every field has a default that works in a cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    watch_namespaces: tuple[str, ...] = Field(default=(), description="Namespaces to watch; empty = all.")
    trainer_image: str = Field(default_factory=lambda: _default_image("trainer"), min_length=1)
    converter_image: str = Field(
        default_factory=lambda: _default_image("converter"),
        min_length=1,
        description="CPU converter image (tensorrt-rtx, onnxruntime).",
    )
    converter_tensorrt_image: str = Field(
        default_factory=lambda: _default_image("converter-tensorrt"),
        min_length=1,
        description="GPU converter image with full TensorRT.",
    )
    server_image: str = Field(default_factory=lambda: _default_image("server"), min_length=1)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    storage_uri: str = Field(
        default="pvc://trtforge-artifacts/",
        pattern=r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/.*|s3://.+)$",
        description="Default artifact store when a ModelDeployment sets none.",
    )
    storage_secret: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=253,
        description="Default Secret with S3 credentials (AWS_*) for s3:// stores of ModelDeployments that "
        "set no spec.storage.secretRef; looked up in the ModelDeployment's namespace.",
    )
    artifacts_mount: str = Field(default="/artifacts", pattern=r"^/.+")
    # The default store's claim (storage_uri pvc://CLAIM/), created in a ModelDeployment's namespace on
    # first use; not owned by the ModelDeployment, so deleting one keeps the namespace's artifacts.
    claim_create: bool = Field(
        default=True,
        description="Create the default store's PersistentVolumeClaim in a ModelDeployment's namespace "
        "when it is missing; false: a missing claim fails the ModelDeployment, naming claim and namespace.",
    )
    claim_size: str = Field(default="20Gi", pattern=QUANTITY, description="Size of a created claim.")
    claim_access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = "ReadWriteOnce"
    claim_storage_class: str = Field(
        default="", max_length=253, description="StorageClass of a created claim; empty: the default class."
    )
    claim_annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of a created claim (a JSON object in the environment)."
    )
    worker_limit: int = Field(default=20, ge=1, le=10_000)
    health_port: int = Field(default=8090, ge=1, le=65535)
    leader_election: bool = Field(
        default=True,
        description="Only the holder of the Lease acts (reconciles, autoscales); other replicas stand by.",
    )
    lease_name: str = Field(
        default="trtforge-operator", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253
    )
    lease_namespace: str = Field(
        default="default",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespace of the Lease: the operator's own (POD_NAMESPACE, from the downward API).",
    )
    pod_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="This replica's identity in the Lease (POD_NAME; a pod's hostname is its name).",
    )
    lease_duration_seconds: float = Field(default=15.0, gt=0.0, le=3600.0)
    renew_deadline_seconds: float = Field(default=10.0, gt=0.0, le=3600.0)
    retry_period_seconds: float = Field(default=2.0, gt=0.0, le=600.0)
    keep_config_revisions: int = Field(
        default=3, ge=2, le=1000, description="Stage ConfigMaps kept per stage: the newest N revisions."
    )
    workload_service_account: str = Field(default="default", min_length=1)
    autoscaler_enabled: bool = True
    autoscaler_modes: tuple[ClusterAutoscalerMode, ...] = Field(
        default=ALL_CLUSTER_MODES,
        description="spec.serving.autoscaling.mode values besides builtin the operator may serve (the "
        "cluster has the API and the chart granted the RBAC); empty = builtin only. Unset = all.",
    )
    resync_seconds: float = Field(default=120.0, ge=1.0, le=86_400.0, description="Safety-net resync period.")
    job_ttl_seconds: int = Field(default=86_400, ge=0, le=31_536_000, description="ttlSecondsAfterFinished.")
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://.+",
        description="Prometheus the KEDA mode's ScaledObjects query (autoscaling.mode: keda).",
    )
    autoscaler_scrape_timeout: float = Field(
        default=1.0, gt=0.0, le=30.0, description="Built-in autoscaler: time-out of one pod's /metrics."
    )

    @field_validator("watch_namespaces", "image_pull_secrets", "autoscaler_modes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("claim_annotations", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("autoscaler_modes")
    @classmethod
    def _dedupe(cls, value: tuple[ClusterAutoscalerMode, ...]) -> tuple[ClusterAutoscalerMode, ...]:
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _lease_timing(self) -> OperatorSettings:
        if not (self.lease_duration_seconds > self.renew_deadline_seconds > self.retry_period_seconds * 1.2):
            raise ValueError(
                "leader election needs TRTFORGE_LEASE_DURATION_SECONDS > TRTFORGE_RENEW_DEADLINE_SECONDS > "
                "1.2 x TRTFORGE_RETRY_PERIOD_SECONDS"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """Build settings from TRTFORGE_* variables (unset or empty variables keep the default)."""
        env = os.environ if env is None else env
        values = {field: env[var] for field, var in ENV_VARS.items() if env.get(var, "") != ""}
        # empty list variables are meaningful ("watch all"), keep them as given
        for field in LIST_FIELDS:
            if ENV_VARS[field] in env:
                values[field] = env[ENV_VARS[field]]
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else "?"
                problems.append(f"{ENV_VARS.get(field, field)}={values.get(field)!r}: {err['msg']}")
            raise SettingsError("invalid operator settings: " + "; ".join(problems)) from None

    @property
    def clusterwide(self) -> bool:
        return not self.watch_namespaces

    def autoscaling_mode_problem(self, mode: str) -> str | None:
        """Why this operator cannot serve spec.serving.autoscaling.mode `mode` (a message to prefix with
        the field), or None when it can. With the autoscaler off altogether nothing is refused:
        spec.serving.replicas applies."""
        return None if not self.autoscaler_enabled else mode_problem(mode, self.autoscaler_modes)


def mode_problem(mode: str, enabled: Collection[str]) -> str | None:
    """Why spec.serving.autoscaling.mode `mode` cannot be served when only `enabled` (besides builtin) is."""
    if mode == "builtin" or mode in enabled:
        return None
    listed = [m for m in ALL_CLUSTER_MODES if m in enabled]
    setting = f"{ENV_VARS['autoscaler_modes']}={','.join(listed)!r}"
    return (
        f"mode {mode!r} is not enabled in this operator ({setting}; "
        f"the Helm value autoscaler.{mode}=true enables it); use mode builtin"
        + "".join(f" or {m}" for m in listed)
    )
