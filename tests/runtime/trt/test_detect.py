"""GPU detection looks at the configured CUDA device, not always GPU 0.

No GPU here: a stand-in `nvidia-smi` on PATH answers per `--id` like the real one (two different GPUs),
so the real subprocess path of `library.detect_compute_capability` runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trtforge_runtime.serve.selection import select_backend
from trtforge_runtime.trt import library

FAKE_SMI = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in
    --id=0|--id=GPU-aaaa) echo "8.9, NVIDIA L4"; exit 0;;
    --id=1|--id=GPU-bbbb) echo "8.6, NVIDIA A10"; exit 0;;
    --id=*) echo "No devices were found" >&2; exit 6;;
  esac
done
echo "8.9, NVIDIA L4"
echo "8.6, NVIDIA A10"
"""


@pytest.fixture
def smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-smi"
    tool.write_text(FAKE_SMI)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if library.importlib.util.find_spec("pycuda") is not None:
        pytest.skip("pycuda is installed: detection asks the CUDA driver, not nvidia-smi")
    return tool


def test_smi_device_id_follows_cuda_visible_devices() -> None:
    assert library.smi_device_id(1, {}) == "1"
    assert library.smi_device_id(0, {"CUDA_VISIBLE_DEVICES": "2,3"}) == "2"
    assert library.smi_device_id(1, {"CUDA_VISIBLE_DEVICES": " GPU-aaaa , GPU-bbbb "}) == "GPU-bbbb"


def test_detection_uses_the_device_argument(smi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert library.detect_compute_capability(0) == ("8.9", "nvidia-smi: GPU 0, NVIDIA L4")
    assert library.detect_compute_capability(1) == ("8.6", "nvidia-smi: GPU 1, NVIDIA A10")
    cc, why = library.detect_compute_capability(5)
    assert cc is None and "nvidia-smi --id=5 failed" in why
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb")  # CUDA device 0 is the A10
    assert library.detect_compute_capability(0) == ("8.6", "nvidia-smi: GPU GPU-bbbb, NVIDIA A10")


def test_engine_selection_uses_the_configured_device(smi: Path, tmp_path: Path) -> None:
    engine = tmp_path / "engine"
    (engine / "engines").mkdir(parents=True)
    (engine / "onnxruntime").mkdir()
    (engine / "onnxruntime" / "model.onnx").write_bytes(b"x")
    entries = []
    for cc, tag in (("8.6", "sm86"), ("8.9", "sm89")):
        (engine / "engines" / f"tensorrt-rtx-{tag}.engine").write_bytes(b"x")
        entries.append(
            {"backend": "tensorrt-rtx", "computeCapability": cc, "file": f"engines/tensorrt-rtx-{tag}.engine"}
        )
    doc = {"engines": entries, "onnxruntime": {"file": "onnxruntime/model.onnx"}}
    (engine / "engine.json").write_text(json.dumps(doc))

    def everything(name: str) -> bool:
        return True

    on_1 = select_backend(engine, doc, device=1, importable=everything)
    assert on_1.compute_capability == "8.6" and on_1.path.name == "tensorrt-rtx-sm86.engine"
    on_0 = select_backend(engine, doc, importable=everything)
    assert on_0.compute_capability == "8.9" and on_0.path.name == "tensorrt-rtx-sm89.engine"
