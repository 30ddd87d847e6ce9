"""Serve settings precedence (flags > env > manifest > defaults), and clear errors for bad values."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from trtforge_runtime.cli import build_parser
from trtforge_runtime.errors import LibraryMissingError, ManifestError, TrtforgeError
from trtforge_runtime.serve.settings import ServeSettings

ROOT = Path(__file__).resolve().parents[3]


def args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", "--engine", "/e", *extra])


def test_defaults_and_flags() -> None:
    s = ServeSettings.from_sources(args("--name", "m", "--port", "9000", "--grpc-port", "0"), env={})
    assert (s.engine_dir, s.name, s.port, s.grpc_port, s.backend) == (Path("/e"), "m", 9000, 0, "auto")
    assert s.max_batch_size == 64 and s.request_timeout_seconds == 30.0 and s.backend_thread is None


def test_manifest_then_env_then_flags() -> None:
    manifest = ROOT / "examples" / "digits.yaml"
    s = ServeSettings.from_sources(args("-f", str(manifest)), env={})
    assert s.name == "digits"
    assert s.max_queue_delay_microseconds == 1000  # spec.serving.batching of the example
    env = {
        "TRTFORGE_MAX_QUEUE_DELAY_MICROSECONDS": "500",
        "TRTFORGE_NAME": "env-name",
        "TRTFORGE_BACKEND": "onnxruntime",
    }
    s = ServeSettings.from_sources(args("-f", str(manifest)), env=env)
    assert s.max_queue_delay_microseconds == 500 and s.name == "env-name" and s.backend == "onnxruntime"
    s = ServeSettings.from_sources(
        args("-f", str(manifest), "--name", "flag-name", "--backend", "tensorrt"), env=env
    )
    assert s.name == "flag-name" and s.backend == "tensorrt"


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ManifestError, match="TRTFORGE_MAX_BATCH_SIZE"):
        ServeSettings.from_sources(args(), env={"TRTFORGE_MAX_BATCH_SIZE": "zero"})
    with pytest.raises(ManifestError, match="TRTFORGE_MAX_QUEUE_SIZE"):
        ServeSettings.from_sources(args(), env={"TRTFORGE_MAX_QUEUE_SIZE": "0"})


def test_tensorrt_runner_without_gpu_libraries_fails_clearly(tmp_path: Path) -> None:
    """Here (no pycuda, no GPU) a TensorRT-RTX engine cannot load; the error says what is missing."""
    from trtforge_runtime.trt.runner import EngineRunner

    engine = tmp_path / "x.engine"
    engine.write_bytes(b"not an engine")
    runner = EngineRunner(engine, "tensorrt-rtx")
    with pytest.raises(TrtforgeError) as info:
        runner.load()
    assert isinstance(info.value, LibraryMissingError)
    assert "pycuda" in str(info.value) or "tensorrt" in str(info.value)


def test_json_log_format_writes_one_object_per_line() -> None:
    import io
    import json
    import logging

    from trtforge_runtime.serve.command import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("trtforge.test-json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("model %s: %s", "digits", 'quote " and ünïcode')
    finally:
        log.removeHandler(handler)
    doc = json.loads(stream.getvalue())
    assert doc["level"] == "WARNING" and doc["logger"] == "trtforge.test-json"
    assert doc["message"] == 'model digits: quote " and ünïcode'


def test_workers_flag_and_env() -> None:
    assert ServeSettings.from_sources(args("--workers", "3"), env={}).workers == 3
    assert ServeSettings.from_sources(args(), env={"TRTFORGE_WORKERS": "2"}).workers == 2
    assert ServeSettings.from_sources(args(), env={}).workers is None  # then: the CPU limit
    with pytest.raises(ManifestError, match="workers"):
        ServeSettings.from_sources(args("--workers", "0"), env={})
