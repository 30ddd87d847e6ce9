"""Conversion Job(s): `trtforge convert` from the model folder to the engine folder.

- backend tensorrt: one Job per compute capability, pinned by node selector to GPUs of that
  architecture (GPU feature discovery labels nvidia.com/gpu.compute.major/minor) and given
  `--compute-capability X`, so every engine is built on the GPU kind it will serve on; the Jobs write
  into the same engine folder (each its own engines/tensorrt-smXY.engine);
- backends tensorrt-rtx and onnxruntime: one CPU Job building every requested capability ahead of time.
"""

from __future__ import annotations

from typing import Any

from trtforge_operator import labels
from trtforge_operator.plan import Plan
from trtforge_operator.reconcilers.common import GPU_MAJOR_LABEL, GPU_MINOR_LABEL, placement, resources
from trtforge_operator.reconcilers.jobs import job, manifest_args

STAGE = "convert"
BACKOFF_LIMIT = 2
ACTIVE_DEADLINE_SECONDS = 6 * 3600


def convert_args(plan: Plan, compute_capability: str | None) -> list[str]:
    args = ["convert", *manifest_args(), "-o", plan.engine_location.path]
    if plan.trains:
        args[3:3] = ["--model", plan.model_location.path]
    if compute_capability is not None:
        args += ["--compute-capability", compute_capability]
    return args


def convert_job(plan: Plan, compute_capability: str | None) -> dict[str, Any]:
    engine = plan.spec.engine
    extra_labels: dict[str, str] = {}
    if compute_capability is not None:  # full TensorRT: build on the target GPU
        major, minor = compute_capability.split(".")
        place = placement(plan, gpu=True, node_selector={GPU_MAJOR_LABEL: major, GPU_MINOR_LABEL: minor})
        res = resources(engine.resources, gpus=max(1, engine.resources.gpus))
        image = plan.settings.converter_tensorrt_image
        extra_labels[labels.COMPUTE_CAPABILITY] = compute_capability
    else:
        place = placement(plan, gpu=False)
        res = resources(engine.resources, gpus=0)
        image = plan.settings.converter_image
    manifest = job(
        plan,
        name=plan.convert_job(compute_capability),
        stage=STAGE,
        revision=plan.engine,
        image=image,
        args=convert_args(plan, compute_capability),
        resources=res,
        placement=place,
        backoff_limit=BACKOFF_LIMIT,
        active_deadline_seconds=ACTIVE_DEADLINE_SECONDS,
        extra_labels=extra_labels,
    )
    manifest["spec"]["template"]["spec"]["containers"][0]["command"] = ["trtforge"]
    return manifest


def convert_jobs(plan: Plan) -> list[dict[str, Any]]:
    return [convert_job(plan, cc) for cc in plan.compute_capabilities]
