"""`engine.json`: the engine folder's description (docs/artifacts.md), read by serving and the operator.

Besides what was built (backend, precision, engines per architecture, the onnxruntime fallback, the gate
report) it carries a small reference sample: a few gate rows and the chosen network's outputs for them in
onnxruntime. The serving runtime runs those rows through the engine it picked at start-up and stays not
ready when outputs differ by more than `atol` or the top-1 classes differ. Rows are chosen with a clear
top-1 margin, so that legitimate numeric differences between GPU and CPU cannot flip the class.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from trtforge_runtime.artifacts import utc_now

FORMAT = "trtforge.engine/v1"
REFERENCE_ROWS = 4
# Allowed |engine - onnxruntime| on the reference rows per precision (GPU kernels, TF32, fused scales).
REFERENCE_ATOL: dict[str, float] = {"fp32": 0.01, "fp16": 0.02, "int8": 0.05}


def tensor_json(array: np.ndarray, datatype: str | None = None) -> dict[str, Any]:
    """A tensor as V2 JSON: shape, datatype (by default the array's own), row-major flat data."""
    a = np.asarray(array)
    datatype = datatype or _DATATYPE_OF_KIND.get((a.dtype.kind, a.dtype.itemsize), "FP32")
    if datatype == "BOOL":
        data: list[Any] = [bool(v) for v in a.reshape(-1)]
    elif datatype.startswith(("INT", "UINT")):
        data = [int(v) for v in a.reshape(-1)]
    else:
        data = [float(v) for v in a.astype(np.float32).reshape(-1)]
    return {"shape": list(a.shape), "datatype": datatype, "data": data}


_DATATYPE_OF_KIND = {
    ("b", 1): "BOOL",
    ("i", 1): "INT8",
    ("u", 1): "UINT8",
    ("i", 4): "INT32",
    ("i", 8): "INT64",
    ("f", 2): "FP16",
    ("f", 4): "FP32",
}


def top1_margins(out: np.ndarray) -> np.ndarray:
    """Per row: best score minus second best."""
    flat = out.reshape(len(out), -1)
    if flat.shape[1] < 2:
        return np.full(len(flat), np.inf)
    part = np.sort(flat, axis=1)
    return part[:, -1] - part[:, -2]


def select_rows(out: np.ndarray, atol: float, rows: int = REFERENCE_ROWS) -> list[int]:
    """The first `rows` rows whose top-1 margin exceeds 4*atol (else those with the largest margins)."""
    margins = top1_margins(out)
    clear = [int(i) for i in np.flatnonzero(margins > 4 * atol)[:rows]]
    if len(clear) < min(rows, len(out)):
        extra = [int(i) for i in np.argsort(-margins) if int(i) not in clear]
        clear += extra[: rows - len(clear)]
    return sorted(clear)


def reference_sample(
    x: np.ndarray | dict[str, np.ndarray],
    input_name: str | None,
    outputs: dict[str, np.ndarray],
    primary_output: str,
    precision: str,
) -> dict[str, Any]:
    """A few rows of the inputs (`x`: one array, or one per input name) and the outputs for them."""
    atol = REFERENCE_ATOL.get(precision, 0.05)
    idx = select_rows(outputs[primary_output], atol)
    primary = outputs[primary_output][idx]
    feeds = x if isinstance(x, dict) else {str(input_name): x}
    return {
        "inputs": {name: tensor_json(a[idx]) for name, a in feeds.items()},
        "outputs": {name: tensor_json(out[idx]) for name, out in outputs.items()},
        "atol": atol,
        "top1": [int(v) for v in np.argmax(primary.reshape(len(primary), -1), axis=1)],
    }


def fingerprint(model_digest: str, engine_spec: dict[str, Any]) -> str:
    """What an engine folder was converted from: same fingerprint -> the folder is reused or extended.

    It leaves out which compute capabilities one run builds (`--compute-capability`), so that the
    per-architecture Jobs of one engine spec all add their engine to the same folder.
    """
    payload = {"model": model_digest, "engine": engine_spec}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def document(
    *,
    name: str,
    model: dict[str, Any],
    backend: str,
    precision: str,
    batch: dict[str, int],
    engines: list[dict[str, Any]],
    onnxruntime: dict[str, Any],
    gate: dict[str, Any],
    reference: dict[str, Any],
    versions: dict[str, str],
    fingerprint: str,
    compute_capabilities: list[str],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "name": name,
        "model": model,
        "backend": backend,
        "precision": precision,
        "rejected": [c for c in gate["candidates"] if not c["passed"]],
        "batch": batch,
        "computeCapabilities": compute_capabilities,
        "engines": engines,
        "onnxruntime": onnxruntime,
        "gate": gate,
        "referenceSample": reference,
        "createdAt": utc_now(),
        "versions": versions,
        "fingerprint": fingerprint,
    }
