"""Loading the TensorRT libraries by backend name, their process-wide logger, and compute capabilities.

Full TensorRT (`tensorrt`) and TensorRT for RTX (`tensorrt_rtx`) expose the same Python API under two
module names; conversion and serving pick one by the spec's backend string. The import happens on first
use (never at import time of this module) and a missing library becomes a `LibraryMissingError` that names
the package to install. Each library wants exactly one logger per process: `logger()` hands out a
recording logger that forwards to Python logging and keeps the latest errors, so that a failed build or
deserialization (which return None without raising) can say why.
"""

from __future__ import annotations

import collections
import importlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from trtforge_runtime.errors import LibraryMissingError, UnsupportedTargetError

TENSORRT = "tensorrt"
TENSORRT_RTX = "tensorrt-rtx"

MODULES: dict[str, str] = {TENSORRT: "tensorrt", TENSORRT_RTX: "tensorrt_rtx"}
DISTRIBUTIONS: dict[str, str] = {TENSORRT: "tensorrt-cu13", TENSORRT_RTX: "tensorrt-rtx-cu13"}

# Targets TensorRT-RTX 1.x builds ahead of time (its ComputeCapability enum). Its runtime refuses 9.0
# (Hopper: H100/H200) and 10.x; FP32 GEMMs cannot target SM75 (Turing).
RTX_COMPUTE_CAPABILITIES: tuple[str, ...] = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")
RTX_NO_FP32_GEMM: tuple[str, ...] = ("7.5",)

_CC_PATTERN = re.compile(r"^([0-9]+)\.([0-9]+)$")
_log = logging.getLogger("trtforge.trt")
_lock = threading.Lock()
_modules: dict[str, ModuleType] = {}
_loggers: dict[str, Any] = {}


def module_name(backend: str) -> str:
    try:
        return MODULES[backend]
    except KeyError:
        raise UnsupportedTargetError(
            f"backend {backend!r} is not a TensorRT backend (expected one of {sorted(MODULES)})"
        ) from None


def load(backend: str) -> ModuleType:
    """Import the library of `backend` ("tensorrt" or "tensorrt-rtx"), once per process."""
    name = module_name(backend)
    with _lock:
        if name not in _modules:
            try:
                _modules[name] = importlib.import_module(name)
            except ImportError as exc:
                raise LibraryMissingError(
                    f"backend {backend} needs the Python module {name!r} (pip install "
                    f"{DISTRIBUTIONS[backend]}), which is not importable here: {exc}"
                ) from None
        return _modules[name]


def available(backend: str) -> bool:
    """Whether the library of `backend` imports here (without raising)."""
    try:
        load(backend)
    except LibraryMissingError:
        return False
    return True


def version(backend: str) -> str:
    return str(load(backend).__version__)


class RecordingLogger:
    """Marker type for type checkers; the real class derives from the library's ILogger (see logger())."""

    errors: collections.deque[str]

    def take_errors(self) -> list[str]:  # pragma: no cover - replaced by the real class
        raise NotImplementedError


def logger(backend: str) -> Any:
    """The one logger of the library of `backend` in this process (created on first use).

    It forwards messages to the `trtforge.trt` Python logger (library INFO/VERBOSE become DEBUG) and keeps
    the last 50 errors; `take_errors()` returns and clears them.
    """
    trt = load(backend)
    with _lock:
        if backend in _loggers:
            return _loggers[backend]
        severity = trt.ILogger.Severity

        class _Logger(trt.ILogger):  # type: ignore[name-defined]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: collections.deque[str] = collections.deque(maxlen=50)

            def log(self, sev: Any, msg: str) -> None:
                if sev in (severity.INTERNAL_ERROR, severity.ERROR):
                    self.errors.append(msg)
                    _log.warning("%s: %s", backend, msg)
                elif sev == severity.WARNING:
                    _log.info("%s: %s", backend, msg)
                else:
                    _log.debug("%s: %s", backend, msg)

            def take_errors(self) -> list[str]:
                out = list(self.errors)
                self.errors.clear()
                return out

        _loggers[backend] = _Logger()
        return _loggers[backend]


def parse_compute_capability(cc: str) -> tuple[int, int]:
    """ "8.9" -> (8, 9); anything else raises UnsupportedTargetError."""
    m = _CC_PATTERN.match(cc.strip())
    if not m:
        raise UnsupportedTargetError(f"compute capability {cc!r} is not of the form MAJOR.MINOR (e.g. 8.9)")
    return int(m.group(1)), int(m.group(2))


def format_compute_capability(major: int, minor: int) -> str:
    return f"{major}.{minor}"


def sm_tag(cc: str) -> str:
    """ "8.9" -> "sm89", "12.0" -> "sm120" (used in engine file names)."""
    major, minor = parse_compute_capability(cc)
    return f"sm{major}{minor}"


def check_rtx_target(cc: str, precision: str) -> None:
    """Refuse targets TensorRT-RTX cannot build for (or whose runtime refuses), naming the reason."""
    major, minor = parse_compute_capability(cc)
    cc = format_compute_capability(major, minor)
    if cc not in RTX_COMPUTE_CAPABILITIES:
        hint = (
            " (Hopper, e.g. H100/H200: the TensorRT-RTX runtime refuses it; use backend tensorrt there)"
            if major in (9, 10)
            else ""
        )
        raise UnsupportedTargetError(
            f"TensorRT-RTX does not support compute capability {cc}{hint}; "
            f"it builds for {', '.join(RTX_COMPUTE_CAPABILITIES)}"
        )
    if cc in RTX_NO_FP32_GEMM and precision == "fp32":
        raise UnsupportedTargetError(
            f"TensorRT-RTX cannot build FP32 GEMMs for compute capability {cc} (Turing); "
            "use precision fp16 or int8 for that target, or drop it from engine.computeCapabilities"
        )


def rtx_compute_capability(cc: str) -> Any:
    """The `tensorrt_rtx.ComputeCapability` member of "8.9" (SM89), refusing unsupported targets."""
    major, minor = parse_compute_capability(cc)
    trt = load(TENSORRT_RTX)
    member = getattr(trt.ComputeCapability, f"SM{major}{minor}", None)
    if member is None:
        raise UnsupportedTargetError(
            f"TensorRT-RTX {trt.__version__} has no compute capability {major}.{minor} (SM{major}{minor})"
        )
    return member


def smi_device_id(device: int, env: Mapping[str, str] | None = None) -> str:
    """The `nvidia-smi --id` of CUDA device `device`: CUDA numbers only the visible GPUs, nvidia-smi all.

    CUDA_VISIBLE_DEVICES (indices or GPU UUIDs, comma-separated) maps CUDA's index to the physical GPU;
    nvidia-smi ignores that variable, so device 1 with CUDA_VISIBLE_DEVICES=2,3 is nvidia-smi's GPU 3.
    """
    env = os.environ if env is None else env
    visible = [v.strip() for v in str(env.get("CUDA_VISIBLE_DEVICES") or "").split(",") if v.strip()]
    if "CUDA_VISIBLE_DEVICES" in env and device < len(visible):
        return visible[device]
    return str(device)


def detect_compute_capability(
    device: int = 0,
    *,
    env: Mapping[str, str] | None = None,
    run: Any = subprocess.run,
) -> tuple[str | None, str]:
    """Compute capability ("8.9") of CUDA device `device` (the one the runtime uses) and how it was found.

    pycuda when installed (it numbers devices as CUDA does), else `nvidia-smi --id` of that device
    (`smi_device_id`); (None, why not) when neither finds it.
    """
    why: list[str] = []
    if importlib.util.find_spec("pycuda") is not None:
        try:
            import pycuda.driver as cuda

            cuda.init()
            count = cuda.Device.count()
            if count > device:
                dev = cuda.Device(device)
                major, minor = dev.compute_capability()
                return format_compute_capability(
                    int(major), int(minor)
                ), f"pycuda: device {device}, {dev.name()}"
            why.append(f"pycuda sees {count} CUDA device(s), not device {device}")
        except Exception as exc:  # pycuda raises its own error types (no driver, no device)
            why.append(f"pycuda: {exc}")
    else:
        why.append("pycuda is not installed")
    smi = shutil.which("nvidia-smi", path=(env or os.environ).get("PATH"))
    if not smi:
        why.append("nvidia-smi not found")
        return None, "; ".join(why)
    target = smi_device_id(device, env)
    try:
        out = run(
            [smi, f"--id={target}", "--query-gpu=compute_cap,name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        why.append(f"nvidia-smi --id={target} failed: {exc}")
        return None, "; ".join(why)
    if not out:
        why.append(f"nvidia-smi lists no GPU {target}")
        return None, "; ".join(why)
    cc, _, name = out.splitlines()[0].partition(",")
    try:
        major, minor = parse_compute_capability(cc)
    except UnsupportedTargetError:
        why.append(f"nvidia-smi reported compute capability {cc.strip()!r}")
        return None, "; ".join(why)
    return format_compute_capability(major, minor), f"nvidia-smi: GPU {target}, {name.strip()}"
