"""trt/library.py: backend names, compute capabilities, the recording logger."""

from __future__ import annotations

import importlib.util

import pytest
from trtforge_runtime.errors import LibraryMissingError, UnsupportedTargetError
from trtforge_runtime.trt import library


def test_compute_capability_strings() -> None:
    assert library.parse_compute_capability("8.9") == (8, 9)
    assert library.parse_compute_capability("12.0") == (12, 0)
    assert library.sm_tag("8.6") == "sm86"
    assert library.sm_tag("12.1") == "sm121"
    for bad in ("89", "8.x", "", "8.9.1"):
        with pytest.raises(UnsupportedTargetError, match=r"MAJOR\.MINOR"):
            library.parse_compute_capability(bad)


@pytest.mark.parametrize("cc", ["8.0", "8.6", "8.9", "12.0", "12.1"])
def test_rtx_targets_map_to_the_library_enum(cc: str) -> None:
    trt = library.load("tensorrt-rtx")
    library.check_rtx_target(cc, "fp32")
    assert library.rtx_compute_capability(cc) == getattr(trt.ComputeCapability, library.sm_tag(cc).upper())


def test_rtx_refuses_hopper_naming_why() -> None:
    with pytest.raises(UnsupportedTargetError, match=r"does not support compute capability 9\.0 \(Hopper"):
        library.check_rtx_target("9.0", "fp16")
    with pytest.raises(UnsupportedTargetError, match=r"no compute capability 9\.0"):
        library.rtx_compute_capability("9.0")


def test_rtx_refuses_fp32_on_turing_only() -> None:
    with pytest.raises(UnsupportedTargetError, match=r"FP32 GEMMs.*7\.5"):
        library.check_rtx_target("7.5", "fp32")
    library.check_rtx_target("7.5", "fp16")
    library.check_rtx_target("7.5", "int8")


def test_unknown_backend() -> None:
    with pytest.raises(UnsupportedTargetError, match="not a TensorRT backend"):
        library.load("onnxruntime")


def test_missing_library_names_the_package() -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("full TensorRT is installed here; the missing-library path cannot be exercised")
    assert not library.available("tensorrt")
    with pytest.raises(LibraryMissingError, match="pip install tensorrt-cu13"):
        library.load("tensorrt")


def test_one_recording_logger_per_process() -> None:
    trt = library.load("tensorrt-rtx")
    log = library.logger("tensorrt-rtx")
    assert library.logger("tensorrt-rtx") is log
    assert isinstance(log, trt.ILogger)
    log.take_errors()
    log.log(trt.ILogger.Severity.ERROR, "boom")
    log.log(trt.ILogger.Severity.WARNING, "just a warning")
    assert log.take_errors() == ["boom"]
    assert log.take_errors() == []
    assert library.version("tensorrt-rtx") == trt.__version__
