"""Typed settings of `trtforge serve`, from flags, then environment, then the manifest, then defaults.

The operator starts serving pods with flags for what differs per deployment (engine folder, name, ports)
and `TRTFORGE_*` environment variables for tuning; `-f FILE` lets a local run take batching and the
request timeout from the ModelDeployment's `spec.serving`. Nothing is read at import time.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trtforge_runtime.errors import ManifestError

ENV_PREFIX = "TRTFORGE_"
# After SIGTERM a pod keeps serving this long (not ready) by default: kube-proxy, ingress controllers and
# service meshes learn that the pod's endpoint is gone a few seconds after the kubelet signals it.
POD_SHUTDOWN_DELAY = 5.0


class ServeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine_dir: Path = Field(description="A `trtforge convert` output folder.")
    name: str | None = Field(default=None, description="Model name (default: engine.json name).")
    model_version: str = Field(default="1", min_length=1, description="The one version served.")
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int = Field(default=8081, ge=0, le=65535, description="0 disables gRPC.")
    backend: Literal["auto", "tensorrt", "tensorrt-rtx", "onnxruntime"] = "auto"
    compute_capability: str | None = Field(
        default=None, description="Skip GPU detection and use this compute capability (e.g. 8.9)."
    )
    device: int = Field(default=0, ge=0, description="CUDA device index.")
    max_batch_size: int = Field(default=64, ge=1, le=65536)
    max_queue_delay_microseconds: int = Field(default=2000, ge=0, le=10_000_000)
    max_queue_size: int = Field(default=1024, ge=1, le=1_000_000)
    request_timeout_seconds: float = Field(default=30.0, gt=0.0, le=3600.0)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="Larger requests get 413.")
    max_header_bytes: int = Field(
        default=32 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Request line + headers; a longer target gets 414, a longer head 431.",
    )
    header_timeout_seconds: float = Field(
        default=5.0, gt=0.0, le=3600.0, description="From a request's first byte to its last header (408)."
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0.0, le=3600.0, description="Longest pause inside a request body (408)."
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=512,
        description="Server processes sharing the port (SO_REUSEPORT), one model copy each "
        "(default: the container's CPU limit, else the CPUs this process may use).",
    )
    idle_timeout_seconds: float = Field(
        default=75.0,
        ge=0.0,
        le=86_400.0,
        description="Close keep-alive connections idle this long (0: never).",
    )
    shutdown_delay_seconds: float = Field(
        default=0.0,
        ge=0.0,
        le=300.0,
        description="After SIGTERM: keep serving (not ready) this long so endpoints drop the pod first "
        f"(default {POD_SHUTDOWN_DELAY:g} s in a Kubernetes pod, 0 elsewhere).",
    )
    drain_timeout_seconds: float = Field(
        default=30.0, ge=0.0, le=3600.0, description="Longest wait for in-flight requests after SIGTERM."
    )
    ort_threads: int = Field(default=1, ge=0, le=256, description="onnxruntime intra-op threads (0: auto).")
    backend_thread: bool | None = Field(
        default=None,
        description="Run the backend in a worker thread so the event loop keeps parsing meanwhile "
        "(default: yes for TensorRT, which waits on the GPU; no for onnxruntime, whose small CPU batches "
        "cost less than the thread hand-off on a one-core pod).",
    )
    warmup_runs: int = Field(default=2, ge=0, le=1000)
    log_format: Literal["text", "json"] = "text"

    @classmethod
    def from_sources(
        cls,
        args: argparse.Namespace | None = None,
        env: Mapping[str, str] | None = None,
        manifest: Path | None = None,
        **overrides: Any,
    ) -> ServeSettings:
        """Merge (lowest precedence first): defaults, manifest spec.serving, TRTFORGE_* env, flags."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        manifest = manifest or (getattr(args, "file", None) if args is not None else None)
        if manifest is not None:
            from trtforge_runtime.spec.load import load_manifest

            md = load_manifest(manifest)
            serving = md.spec.serving
            values.update(
                name=md.metadata.name,
                max_batch_size=serving.batching.max_batch_size,
                max_queue_delay_microseconds=serving.batching.max_queue_delay_microseconds,
                max_queue_size=serving.batching.max_queue_size,
                request_timeout_seconds=serving.request_timeout_seconds,
            )
        if env.get("KUBERNETES_SERVICE_HOST"):  # in a pod: wait for the endpoints to drop us
            values["shutdown_delay_seconds"] = POD_SHUTDOWN_DELAY
        for field in cls.model_fields:
            raw = env.get(ENV_PREFIX + field.upper())
            if raw is not None and raw != "":
                values[field] = raw
        if args is not None:
            flags = {
                "engine": "engine_dir",
                "name": "name",
                "host": "host",
                "port": "port",
                "grpc_port": "grpc_port",
                "backend": "backend",
                "workers": "workers",
            }
            for flag, field in flags.items():
                value = getattr(args, flag, None)
                if value is not None and not (field == "backend" and value == "auto" and "backend" in values):
                    values[field] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])} ({ENV_PREFIX}{str(e['loc'][0]).upper()}): {e['msg']}"
                for e in exc.errors()
            )
            raise ManifestError(f"invalid serve settings: {problems}") from None
