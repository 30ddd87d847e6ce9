"""The corpus of ModelDeployment specs that the API server and pydantic must judge alike.

Each case changes the digits example and names the message its refusal carries (None: a valid object).
tests/runtime/spec/test_rules.py sends every case through pydantic and the test API server, and the
real-cluster suite (tests/e2e/test_refusals_e2e.py) through a real API server (`kubectl apply
--dry-run=server`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from trtforge_runtime.spec import crd

REPO = Path(__file__).resolve().parents[1]
TRAIN = "spec.model.train"
LAYERS = f"{TRAIN}.architecture.layers"


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    node: Any = doc
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def example(**changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    for dotted, value in changes.items():
        _set(doc, dotted.replace("__", "."), value)
    return doc


def layers(*items: dict[str, Any]) -> dict[str, Any]:
    return {LAYERS.replace(".", "__"): [*items, {"type": "Dense", "units": 10, "activation": "softmax"}]}


def res(section: str, **values: Any) -> dict[str, Any]:
    base = {"gpus": 0, "cpu": "1", "memory": "1Gi"} | values
    return {f"spec__{section}__resources": base}


# (id, changes, message the refusal carries, or None for a valid object)
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("example", {}, None),
    # metadata.name: the Service is named like the object
    ("name-63", {"metadata__name": "d" * 63}, None),
    ("name-64", {"metadata__name": "d" * 64}, "must be at most 63 characters"),
    ("name-dotted", {"metadata__name": "digits.v2"}, "must be a DNS-1035 label"),
    ("name-digit-first", {"metadata__name": "2digits"}, "must be a DNS-1035 label"),
    # layers: required fields and fields that apply
    (
        "conv2d-ok",
        layers(
            {"type": "Reshape", "targetShape": [8, 8, 1]},
            {
                "type": "Conv2D",
                "filters": 4,
                "kernelSize": [3, 3],
                "strides": [1, 1],
                "padding": "same",
                "activation": "relu",
            },
            {"type": "MaxPooling2D", "poolSize": [2, 2]},
            {"type": "Flatten"},
            {"type": "BatchNormalization", "momentum": 0.9, "epsilon": 0.001},
        ),
        None,
    ),
    ("dense-no-units", layers({"type": "Dense"}), "a Dense layer needs units"),
    ("dropout-no-rate", layers({"type": "Dropout"}), "a Dropout layer needs rate"),
    (
        "conv-no-kernel",
        layers({"type": "Conv2D", "filters": 3}),
        "a Conv2D layer needs filters and kernelSize",
    ),
    ("reshape-no-shape", layers({"type": "Reshape"}), "a Reshape layer needs targetShape"),
    (
        "dropout-units",
        layers({"type": "Dropout", "rate": 0.5, "units": 5}),
        "units does not apply to a Dropout layer",
    ),
    (
        "flatten-activation",
        layers({"type": "Flatten", "activation": "relu"}),
        "activation does not apply to a Flatten layer",
    ),
    (
        "dense-rate",
        layers({"type": "Dense", "units": 3, "rate": 0.1}),
        "rate does not apply to a Dense layer",
    ),
    (
        "dense-filters",
        layers({"type": "Dense", "units": 3, "filters": 2}),
        "filters does not apply to a Dense layer",
    ),
    (
        "pool-kernel",
        layers({"type": "MaxPooling2D", "kernelSize": [2, 2]}),
        "kernelSize does not apply to a MaxPooling2D layer",
    ),
    (
        "dense-strides",
        layers({"type": "Dense", "units": 3, "strides": [1, 1]}),
        "strides does not apply to a Dense layer",
    ),
    (
        "dense-padding",
        layers({"type": "Dense", "units": 3, "padding": "same"}),
        "padding does not apply to a Dense layer",
    ),
    (
        "conv-pool",
        layers({"type": "Conv2D", "filters": 2, "kernelSize": [3, 3], "poolSize": [2, 2]}),
        "poolSize does not apply to a Conv2D layer",
    ),
    (
        "dense-shape",
        layers({"type": "Dense", "units": 3, "targetShape": [2]}),
        "targetShape does not apply to a Dense layer",
    ),
    (
        "dense-momentum",
        layers({"type": "Dense", "units": 3, "momentum": 0.5}),
        "momentum does not apply to a Dense layer",
    ),
    (
        "dropout-epsilon",
        layers({"type": "Dropout", "rate": 0.1, "epsilon": 0.5}),
        "epsilon does not apply to a Dropout layer",
    ),
    # cross-field bounds
    (
        "batch-order",
        {"spec__engine__batch": {"min": 8, "opt": 4, "max": 16}},
        "batch needs min <= opt <= max",
    ),
    (
        "signature-onnx",
        {"spec__model": {"source": {"uri": "m.onnx", "format": "onnx", "signature": "serve"}}},
        "signature applies to savedmodel sources only",
    ),
    (
        "input-dimension-order",
        {"spec__engine__inputs": [{"name": "tokens", "dims": [{"min": 8, "opt": 64, "max": 32}]}]},
        "a dimension profile needs min <= opt <= max",
    ),
    (
        "replicas-order",
        {"spec__serving__autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "minReplicas must be <= maxReplicas",
    ),
    (
        "panic-window",
        {"spec__serving__autoscaling": {"panicWindowSeconds": 90, "stableWindowSeconds": 60}},
        "panicWindowSeconds must be <= stableWindowSeconds",
    ),
    (
        "rollout-zero",
        {"spec__serving__rollout": {"maxSurge": 0, "maxUnavailable": 0}},
        "maxSurge and maxUnavailable cannot both be 0",
    ),
    (
        "train-and-source",
        {"spec__model__source": {"uri": "pvc://m/model.onnx", "format": "onnx"}},
        "exactly one of train or source",
    ),
    # quantities: the exact Kubernetes grammar, and more than zero
    ("cpu-milli", res("serving", cpu="500m", memory="1.5Gi"), None),
    ("cpu-int", res("serving", cpu=2, memory="128e6"), None),
    ("cpu-1.2.3", res("serving", cpu="1.2.3"), "should match"),
    ("cpu-1e", res("serving", cpu="1e"), "should match"),
    ("cpu-negative", res("serving", cpu="-2"), "should match"),
    ("memory-bad-suffix", res("serving", memory="4GB"), "should match"),
    ("cpu-zero", res("serving", cpu="0"), "cpu must be more than zero"),
    ("cpu-int-zero", res("engine", cpu=0), "cpu must be more than zero"),
    ("memory-zero", res("serving", memory="0Gi"), "memory must be more than zero"),
    # Secret names, tolerations, node selectors: what the API server would refuse in the pods
    ("secret-ok", {"spec__storage__secretRef": {"name": "s3.creds"}}, None),
    ("secret-bad", {"spec__storage__secretRef": {"name": "S3_Creds"}}, "should match"),
    (
        "tolerations-ok",
        {
            "spec__placement__tolerations": [
                {"operator": "Exists"},
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "ml", "effect": "NoExecute", "tolerationSeconds": 30},
            ]
        },
        None,
    ),
    (
        "exists-value",
        {"spec__placement__tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]},
        "operator Exists takes no value",
    ),
    (
        "equal-no-key",
        {"spec__placement__tolerations": [{"operator": "Equal", "value": "x"}]},
        "without a key must use operator Exists",
    ),
    (
        "seconds-no-execute",
        {"spec__placement__tolerations": [{"key": "a", "effect": "NoSchedule", "tolerationSeconds": 5}]},
        "tolerationSeconds applies only to effect NoExecute",
    ),
    (
        "toleration-bad-key",
        {"spec__placement__tolerations": [{"key": "a b", "operator": "Exists"}]},
        "should match",
    ),
    (
        "selector-ok",
        {"spec__placement__nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100", "pool": ""}},
        None,
    ),
    (
        "selector-bad-key",
        {"spec__placement__nodeSelector": {"gpu type": "a"}},
        "nodeSelector keys must be qualified names",
    ),
    (
        "selector-bad-prefix",
        {"spec__placement__nodeSelector": {"Nvidia.COM/gpu": "a"}},
        "nodeSelector keys must be qualified names",
    ),
    (
        "selector-bad-value",
        {"spec__placement__nodeSelector": {"pool": "a b"}},
        "nodeSelector values must be label values",
    ),
    # tasks and custom training (skipped while the CRD has no such fields)
    (
        "regression-loss",
        {"spec__model__task": "regression", f"{TRAIN}__minAccuracy": 0.0},
        "task regression trains with loss",
    ),
    ("classification-loss", {f"{TRAIN}__loss": "mean_squared_error"}, "task classification trains with loss"),
    ("multilabel-loss", {"spec__model__task": "multilabel"}, "task multilabel trains with loss"),
    (
        "mae-on-classification",
        {f"{TRAIN}__maxMae": 0.1},
        "train.maxMae and train.minR2 gate regression models",
    ),
    (
        "regression-min-accuracy",
        {"spec__model__task": "regression", f"{TRAIN}__loss": "mean_squared_error"},
        "train.minAccuracy does not apply to regression",
    ),
    (
        "architecture-and-custom",
        {f"{TRAIN}__custom": {"command": ["python", "train.py"]}},
        "train needs exactly one of architecture or custom",
    ),
    (
        "architecture-without-dataset",
        {f"{TRAIN}__dataset": None},
        "train.architecture needs train.dataset (only custom code may bring its own data)",
    ),
    (
        "custom-both",
        {f"{TRAIN}__architecture": None, f"{TRAIN}__custom": {"command": ["python"], "entryPoint": "a:b"}},
        "custom needs exactly one of command or entryPoint",
    ),
    (
        "custom-timeout-past-the-job-deadline",
        {
            f"{TRAIN}__architecture": None,
            f"{TRAIN}__custom": {"entryPoint": "a:b", "timeoutSeconds": 7200},
            f"{TRAIN}__activeDeadlineSeconds": 3600,
        },
        "train.custom.timeoutSeconds must be less than train.activeDeadlineSeconds",
    ),
    (
        "custom-timeout-at-the-job-deadline",
        {
            f"{TRAIN}__architecture": None,
            f"{TRAIN}__custom": {"entryPoint": "a:b", "timeoutSeconds": 3600},
            f"{TRAIN}__activeDeadlineSeconds": 3600,
        },
        "train.custom.timeoutSeconds must be less than train.activeDeadlineSeconds",
    ),
    (
        "custom-timeout-default-past-a-short-deadline",
        {
            f"{TRAIN}__architecture": None,
            f"{TRAIN}__custom": {"entryPoint": "a:b"},
            f"{TRAIN}__activeDeadlineSeconds": 600,
        },
        "train.custom.timeoutSeconds must be less than train.activeDeadlineSeconds",
    ),
    (
        "custom-timeout-within-the-job-deadline",
        {
            f"{TRAIN}__architecture": None,
            f"{TRAIN}__custom": {"entryPoint": "a:b", "timeoutSeconds": 3599},
            f"{TRAIN}__activeDeadlineSeconds": 3600,
        },
        None,
    ),
    (
        "r2-on-classification",
        {"spec__engine__accuracy__minR2": 0.9},
        "engine.accuracy.minR2 and maxMae gate regression models",
    ),
    (
        "label-gate-on-classification",
        {"spec__engine__accuracy__maxLabelDisagreement": 0.1},
        "engine.accuracy.maxLabelDisagreement gates multilabel models",
    ),
]


def in_schema(dotted: str) -> bool:
    """Whether the CRD declares the field at `dotted` (cases for fields it lacks yet are skipped)."""
    node: Any = crd.spec_openapi_schema()
    for part in dotted.split("__"):
        if node.get("type") == "array" or isinstance(node.get("additionalProperties"), dict):
            return True
        props = node.get("properties") or {}
        if part not in props:
            return part == "metadata" or node.get("x-kubernetes-preserve-unknown-fields", False)
        node = props[part]
    return True
