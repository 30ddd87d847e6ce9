"""`precision: best` falls back past precisions that fail the gate or fail to build; the probability gate.

Real TensorRT-RTX builds on CPU: int8 cannot be built for compute capability 7.5 (TensorRT-RTX's Turing
backend has no GEMM for it) while fp16 can, which is a real build failure `best` must step over. The
injected failure (one compute capability's build raises) covers any other builder error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from trtforge_runtime.convert.builders.rtx import RtxBuilder
from trtforge_runtime.errors import ConversionError

pytestmark = pytest.mark.slow


def test_best_falls_back_when_a_build_fails_for_one_compute_capability(
    tmp_path: Path,
    model_dir: Path,
    tools: Any,
    write_spec: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: Any,
) -> None:
    real_build = RtxBuilder.build

    def failing_build(self: RtxBuilder, request: Any, dest: Path) -> None:
        if request.precision == "int8" and request.compute_capability == "8.9":
            raise ConversionError(
                "tensorrt-rtx could not build a int8 engine for compute capability 8.9: injected"
            )
        real_build(self, request, dest)

    monkeypatch.setattr(RtxBuilder, "build", failing_build)
    spec = write_spec({"precision": "best", "computeCapabilities": ["8.6", "8.9"]})
    with caplog.at_level(logging.WARNING, logger="trtforge_runtime.convert.command"):
        assert tools.run(spec, model_dir, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["precision"] == "fp16" and [e["computeCapability"] for e in doc["engines"]] == ["8.6", "8.9"]
    assert all(e["precision"] == "fp16" for e in doc["engines"])
    int8 = doc["rejected"][0]
    assert int8["precision"] == "int8" and int8["rejectedBy"] == "build"
    assert int8["top1Drop"] <= 0.01 and int8["checks"]  # it passed the gate: the build rejected it
    assert "compute capability 8.9: injected" in int8["reason"]
    assert [c["precision"] for c in doc["gate"]["candidates"]] == ["int8", "fp16"]
    assert "precision int8 rejected (build)" in caplog.text and "8.9: injected" in caplog.text
    assert "rejected int8 (build): tensorrt-rtx could not build" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "e" / "engines").iterdir()) == [
        "tensorrt-rtx-sm86.engine",
        "tensorrt-rtx-sm89.engine",
    ]


def test_best_falls_back_on_a_real_build_failure(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any
) -> None:
    """int8 passes the gate but TensorRT-RTX cannot build it for 7.5 (Turing): fp16 builds for both."""
    spec = write_spec({"precision": "best", "computeCapabilities": ["7.5", "8.6"]})
    assert tools.run(spec, model_dir, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["precision"] == "fp16" and [e["computeCapability"] for e in doc["engines"]] == ["7.5", "8.6"]
    int8 = doc["rejected"][0]
    assert int8["precision"] == "int8" and int8["rejectedBy"] == "build" and int8["passed"] is False
    assert "compute capability 7.5" in int8["reason"] and "Turing" in int8["reason"]


def test_best_with_compute_capability_flag_checks_every_spec_target(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any
) -> None:
    """A per-architecture run (--compute-capability 8.6) still refuses int8 that 7.5 cannot build, so the
    runs for 7.5 and 8.6 choose the same precision and can share one folder."""
    spec = write_spec({"precision": "best", "computeCapabilities": ["7.5", "8.6"]})
    out, cache = tmp_path / "e", tmp_path / "c"
    assert tools.run(spec, model_dir, out, cache, "--compute-capability", "8.6") == 0
    assert tools.read(out)["precision"] == "fp16" and len(tools.read(out)["engines"]) == 1
    assert tools.run(spec, model_dir, out, cache, "--compute-capability", "7.5") == 0
    assert [e["computeCapability"] for e in tools.read(out)["engines"]] == ["7.5", "8.6"]


def test_explicit_int8_that_cannot_build_fails_naming_the_target(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, capsys: Any
) -> None:
    spec = write_spec({"precision": "int8", "computeCapabilities": ["7.5"]})
    assert tools.run(spec, model_dir, tmp_path / "e", tmp_path / "c") == 6
    assert "could not build a int8 engine for compute capability 7.5" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def _gate_spec(write_spec: Any, **accuracy: Any) -> Path:
    bounds = {"maxTop1Drop": 1.0, "maxAbsDiff": None, "samples": 256} | accuracy
    return write_spec({"backend": "onnxruntime", "precision": "int8", "accuracy": bounds})


@pytest.mark.parametrize(
    ("bound", "metric"), [("maxTop1Drop", "top1Drop"), ("maxAbsDiff", "maxAbsDiff"), ("maxMeanKl", "meanKl")]
)
def test_gate_bounds_at_the_exact_limit_through_convert(
    tmp_path: Path,
    miscalibrated_model_dir: Path,
    tools: Any,
    write_spec: Any,
    capsys: Any,
    bound: str,
    metric: str,
) -> None:
    """The measured value as a limit passes; the next float below is refused (exit 7) naming the bound."""
    assert tools.run(_gate_spec(write_spec), miscalibrated_model_dir, tmp_path / "m", tmp_path / "c") == 0
    measured = tools.read(tmp_path / "m")["gate"]["candidates"][0][metric]
    assert measured > 0  # a loosened limit (+0.05) passes "below"; a limit fixed at 0.5 fails one side

    assert (
        tools.run(
            _gate_spec(write_spec, **{bound: measured}),
            miscalibrated_model_dir,
            tmp_path / "at",
            tmp_path / "c",
        )
        == 0
    )
    doc = tools.read(tmp_path / "at")
    assert doc["gate"][bound] == measured
    check = next(c for c in doc["gate"]["candidates"][0]["checks"] if c["metric"] == metric)
    assert check == {"metric": metric, "value": measured, "limit": measured, "passed": True}

    below = float(np.nextafter(measured, 0.0))
    capsys.readouterr()
    assert (
        tools.run(
            _gate_spec(write_spec, **{bound: below}),
            miscalibrated_model_dir,
            tmp_path / "below",
            tmp_path / "c",
        )
        == 7
    )
    err = capsys.readouterr().err
    assert f"({bound})" in err and f"loosen engine.accuracy.{bound}" in err
    assert not (tmp_path / "below").exists()


def test_best_reports_every_candidate_against_the_probability_bound(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any
) -> None:
    """A maxAbsDiff bound int8 cannot meet but fp16 can: best keeps fp16; both candidates carry the
    metric, the limit and the verdict."""
    spec = write_spec(
        {"precision": "best", "accuracy": {"maxTop1Drop": 0.5, "maxAbsDiff": 0.005, "maxMeanKl": 0.01}}
    )
    assert tools.run(spec, model_dir, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["precision"] == "fp16"
    int8, fp16 = doc["gate"]["candidates"]
    assert int8["maxAbsDiff"] > 0.005 and int8["rejectedBy"] == "gate" and "(maxAbsDiff)" in int8["reason"]
    assert fp16["maxAbsDiff"] <= 0.005 and fp16["passed"] and fp16["meanKl"] <= 0.01
    assert {c["metric"] for c in fp16["checks"]} == {"top1Drop", "maxAbsDiff", "meanKl"}
    assert doc["gate"]["maxAbsDiff"] == 0.005 and doc["gate"]["maxMeanKl"] == 0.01


def test_int8_engine_json_reports_the_calibration(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any
) -> None:
    spec = write_spec({"precision": "int8", "calibration": {"method": "entropy", "rows": 500}})
    assert tools.run(spec, model_dir, tmp_path / "e", tmp_path / "c") == 0
    calibration = tools.read(tmp_path / "e")["gate"]["calibration"]
    assert calibration["method"] == "entropy" and calibration["rows"] == 496 and calibration["batch"] == 62
    assert calibration["origin"].endswith("samples.npz")
