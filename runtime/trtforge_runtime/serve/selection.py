"""Which backend serves an engine folder on this node, and why (logged at start-up).

Preference: the TensorRT / TensorRT-RTX engine that `engine.json` lists for the compute capability of the
configured CUDA device (`--device`; pycuda, else `nvidia-smi`), when its library and pycuda import here;
otherwise the always-present onnxruntime artifact. Every fallback carries a reason sentence ("no NVIDIA
GPU detected", "no engine built for compute capability 9.0 (engines: 8.6, 8.9)", ...). A backend forced
with `--backend` that cannot run is an error instead of a silent fallback.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtforge_runtime.errors import ArtifactError
from trtforge_runtime.trt import library

log = logging.getLogger(__name__)

ONNXRUNTIME = "onnxruntime"
TRT_KINDS = ("tensorrt", "tensorrt-rtx")


@dataclass(frozen=True, slots=True)
class Selection:
    kind: str  # onnxruntime | tensorrt | tensorrt-rtx
    path: Path
    reason: str
    compute_capability: str | None = None
    engine: dict[str, Any] | None = None  # the engines[] entry of engine.json


def detect_compute_capability(device: int = 0) -> tuple[str | None, str]:
    """Compute capability ("8.9") of CUDA device `device` and how it was found, or None and why not."""
    return library.detect_compute_capability(device)


def _module_importable(kind: str) -> bool:
    """Whether the module of "tensorrt", "tensorrt-rtx" or "pycuda" is installed (without importing it)."""
    name = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}.get(kind, kind)
    return importlib.util.find_spec(name) is not None


def onnxruntime_path(engine_dir: Path, doc: dict[str, Any]) -> Path:
    """The onnxruntime model of an engine folder: the offline-optimized file when present."""
    section = doc.get("onnxruntime") or {}
    for key in ("optimizedFile", "file"):
        rel = section.get(key)
        if isinstance(rel, str) and (engine_dir / rel).is_file():
            return engine_dir / rel
    fallback = engine_dir / "onnxruntime" / "model.onnx"
    if fallback.is_file():
        return fallback
    raise ArtifactError(
        f"{engine_dir}: no onnxruntime model (engine.json onnxruntime.file) in the engine folder"
    )


def select_backend(
    engine_dir: Path,
    doc: dict[str, Any],
    *,
    forced: str = "auto",
    compute_capability: str | None = None,
    detect: Callable[[], tuple[str | None, str]] | None = None,
    importable: Callable[[str], bool] | None = None,
    device: int = 0,
) -> Selection:
    """Pick the backend for this node (see the module docstring); `compute_capability` skips detection.

    Detection looks at CUDA device `device`, the one the runtime will run the engine on.
    """
    detect = detect or (lambda: detect_compute_capability(device))
    importable = importable or _module_importable
    if forced == ONNXRUNTIME:
        return Selection(ONNXRUNTIME, onnxruntime_path(engine_dir, doc), "onnxruntime forced by --backend")
    cc: str | None
    if compute_capability:
        cc, how = compute_capability, "given by settings"
    else:
        cc, how = detect()
    entries = [e for e in doc.get("engines") or [] if isinstance(e, dict)]
    if forced in TRT_KINDS:
        entries = [e for e in entries if e.get("backend") == forced]
    reason: str
    if cc is None:
        reason = f"no NVIDIA GPU detected ({how})"
    else:
        built = sorted({str(e.get("computeCapability")) for e in entries})
        matching = [e for e in entries if str(e.get("computeCapability")) == cc]
        if not matching:
            reason = (
                f"GPU compute capability {cc} ({how}) has no engine in engine.json "
                f"(engines built for: {', '.join(built) or 'none'})"
            )
        else:
            problems = []
            for entry in matching:
                kind = str(entry.get("backend"))
                path = engine_dir / str(entry.get("file"))
                if kind not in TRT_KINDS:
                    problems.append(f"unknown engine backend {kind!r}")
                elif not path.is_file():
                    problems.append(f"engine file {path} is missing")
                elif not importable(kind):
                    module = "tensorrt" if kind == "tensorrt" else "tensorrt_rtx"
                    problems.append(f"{kind} engine needs the Python module {module}, which is not installed")
                elif not importable("pycuda"):
                    problems.append(f"{kind} engine needs pycuda, which is not installed")
                else:
                    return Selection(
                        kind, path, f"engine built for compute capability {cc} ({how})", cc, entry
                    )
            reason = f"GPU compute capability {cc} ({how}): " + "; ".join(problems)
    if forced in TRT_KINDS:
        raise ArtifactError(f"--backend {forced} cannot run here: {reason}")
    return Selection(ONNXRUNTIME, onnxruntime_path(engine_dir, doc), f"onnxruntime fallback: {reason}", cc)
