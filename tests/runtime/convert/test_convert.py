"""`trtforge convert` end to end with real TensorRT-RTX builds on CPU, the gate, the cache and bad input."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from trtforge_runtime.convert import command
from trtforge_runtime.convert.builders.rtx import RtxBuilder

pytestmark = pytest.mark.slow


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_fp16_engines_per_compute_capability(
    fp16_build: dict[str, Path], model_dir: Path, tools: Any
) -> None:
    out = fp16_build["out"]
    doc = tools.read(out)
    assert doc["format"] == "trtforge.engine/v1" and doc["name"] == "digits"
    assert doc["backend"] == "tensorrt-rtx" and doc["precision"] == "fp16"
    assert doc["batch"] == {"min": 1, "opt": 8, "max": 64}
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert doc["model"]["digest"] == manifest["digest"]
    assert doc["model"]["inputs"] == [{"name": "pixels", "shape": [-1, 64], "datatype": "FP32"}]
    assert doc["model"]["outputs"] == [{"name": "probabilities", "shape": [-1, 10], "datatype": "FP32"}]
    assert [e["computeCapability"] for e in doc["engines"]] == ["8.6", "8.9"]
    for e in doc["engines"]:
        path = out / e["file"]
        assert e["file"] == f"engines/tensorrt-rtx-sm{e['computeCapability'].replace('.', '')}.engine"
        assert path.stat().st_size == e["sizeBytes"] > 10_000
        assert e["libraryVersion"] == doc["versions"]["tensorrt_rtx"] and not e["cacheHit"]
        assert e["buildSeconds"] > 0
    g = doc["gate"]
    assert g["chosen"] == "fp16" and g["samples"] == 256 and g["data"] == "test"
    assert g["candidates"][0]["passed"] and g["candidates"][0]["top1Drop"] <= 0.01
    assert doc["rejected"] == []

    # the onnxruntime fallback is the fp16 network (FP32 I/O) and reproduces the reference sample
    ref = doc["referenceSample"]
    x = np.array(ref["inputs"]["pixels"]["data"], np.float32).reshape(ref["inputs"]["pixels"]["shape"])
    want = np.array(ref["outputs"]["probabilities"]["data"], np.float32).reshape(4, 10)
    for name in (doc["onnxruntime"]["file"], doc["onnxruntime"]["optimizedFile"]):
        sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"pixels": x})[0]
        assert np.abs(got - want).max() <= ref["atol"]
        assert list(np.argmax(got, 1)) == ref["top1"]
    kinds = {i.data_type for i in onnx.load(str(out / doc["onnxruntime"]["file"])).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in kinds


def test_second_run_is_a_cache_hit(
    fp16_build: dict[str, Path], model_dir: Path, tools: Any, capsys: Any
) -> None:
    cache = fp16_build["cache"]
    before = _snapshot(cache)
    out2 = fp16_build["root"] / "engine-again"
    assert tools.run(fp16_build["spec"], model_dir, out2, cache) == 0
    assert "cache hit" in capsys.readouterr().out
    assert _snapshot(cache) == before  # nothing rebuilt, rewritten or added
    doc = tools.read(out2)
    assert all(e["cacheHit"] for e in doc["engines"]) and doc["onnxruntime"]["cacheHit"]
    first = tools.read(fp16_build["out"])
    assert [e["cacheKey"] for e in doc["engines"]] == [e["cacheKey"] for e in first["engines"]]
    for e in doc["engines"]:
        assert (out2 / e["file"]).read_bytes() == (fp16_build["out"] / e["file"]).read_bytes()


def test_same_output_again_is_reused(
    fp16_build: dict[str, Path], model_dir: Path, tools: Any, capsys: Any
) -> None:
    out = fp16_build["out"]
    before = _snapshot(out)
    assert tools.run(fp16_build["spec"], model_dir, out, fp16_build["cache"]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert _snapshot(out) == before


def test_output_holding_another_engine_is_refused(
    fp16_build: dict[str, Path], model_dir: Path, tools: Any, write_spec: Any, capsys: Any
) -> None:
    out = fp16_build["out"]
    before = _snapshot(out)
    spec = write_spec({"precision": "fp32", "computeCapabilities": ["8.6", "8.9"]})
    assert tools.run(spec, model_dir, out, fp16_build["cache"]) == 5
    assert "already holds a different engine" in capsys.readouterr().err
    assert _snapshot(out) == before


def test_fp32_and_compute_capability_flag(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any
) -> None:
    spec = write_spec({"precision": "fp32", "computeCapabilities": ["8.0", "8.6", "12.0"]})
    out = tmp_path / "e"
    assert tools.run(spec, model_dir, out, tmp_path / "c", "--compute-capability", "12.0") == 0
    doc = tools.read(out)
    assert doc["precision"] == "fp32" and [e["file"] for e in doc["engines"]] == [
        "engines/tensorrt-rtx-sm120.engine"
    ]
    assert doc["gate"]["candidates"][0]["maxAbsDiff"] == 0.0
    assert sorted(p.name for p in (out / "engines").iterdir()) == ["tensorrt-rtx-sm120.engine"]


def test_int8_qdq_through_the_gate(tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any) -> None:
    spec = write_spec({"precision": "int8", "accuracy": {"maxTop1Drop": 0.02, "samples": 300}})
    out = tmp_path / "e"
    assert tools.run(spec, model_dir, out, tmp_path / "c") == 0
    doc = tools.read(out)
    assert doc["precision"] == "int8" and doc["gate"]["samples"] == 300
    cand = doc["gate"]["candidates"]
    assert [c["precision"] for c in cand] == ["int8"] and cand[0]["passed"] and cand[0]["top1Drop"] <= 0.02
    ops = {n.op_type for n in onnx.load(str(out / "onnxruntime" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert (out / doc["engines"][0]["file"]).stat().st_size > 10_000


def test_gate_rejects_explicit_precision(
    tmp_path: Path, miscalibrated_model_dir: Path, tools: Any, write_spec: Any, capsys: Any
) -> None:
    spec = write_spec({"precision": "int8", "accuracy": {"maxTop1Drop": 0.01, "samples": 256}})
    out, cache = tmp_path / "e", tmp_path / "c"
    assert tools.run(spec, miscalibrated_model_dir, out, cache) == 7
    err = capsys.readouterr().err
    assert (
        "precision int8 rejected by the accuracy gate: top1Drop 0." in err and "> 0.01 (maxTop1Drop)" in err
    )
    assert not out.exists() and not list(cache.glob("tensorrt-rtx-*"))


def test_best_takes_int8_when_it_passes(tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any) -> None:
    spec = write_spec({"precision": "best", "accuracy": {"maxTop1Drop": 0.02, "samples": 256}})
    assert tools.run(spec, model_dir, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["precision"] == "int8" and [c["precision"] for c in doc["gate"]["candidates"]] == ["int8"]


def test_best_falls_back_when_int8_fails(
    tmp_path: Path, miscalibrated_model_dir: Path, tools: Any, write_spec: Any, capsys: Any
) -> None:
    spec = write_spec({"precision": "best"})
    assert tools.run(spec, miscalibrated_model_dir, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["precision"] == "fp16" and doc["gate"]["chosen"] == "fp16"
    assert [(c["precision"], c["passed"]) for c in doc["gate"]["candidates"]] == [
        ("int8", False),
        ("fp16", True),
    ]
    assert doc["rejected"][0]["precision"] == "int8" and doc["rejected"][0]["top1Drop"] > 0.5
    assert doc["rejected"][0]["rejectedBy"] == "gate"
    assert "rejected int8 (gate): accuracy gate: top1Drop 0." in capsys.readouterr().out


def test_best_skips_int8_without_calibration_rows(
    tmp_path: Path, uncalibrated_model_dir: Path, tools: Any, write_spec: Any
) -> None:
    spec = write_spec({"precision": "best"})
    assert tools.run(spec, uncalibrated_model_dir, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["precision"] == "fp16"
    assert "calibration data" in doc["rejected"][0]["reason"]


def test_int8_without_calibration_data_fails(
    tmp_path: Path, uncalibrated_model_dir: Path, tools: Any, write_spec: Any, capsys: Any
) -> None:
    spec = write_spec({"precision": "int8"})
    assert tools.run(spec, uncalibrated_model_dir, tmp_path / "e", tmp_path / "c") == 6
    err = capsys.readouterr().err
    assert "int8 needs calibration data" in err
    # both ways to give rows are named: the training code's samples and a dataset of the spec
    assert "ctx.write_samples(x_calib=...)" in err and "spec.model.source.dataset" in err
    assert not (tmp_path / "e").exists()


def test_interrupted_build_leaves_no_partial_engine(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second architecture's build dies after writing half an engine: nothing of it survives."""
    spec = write_spec({"computeCapabilities": ["8.6", "8.9"], "precision": "fp32"})
    out, cache = tmp_path / "e", tmp_path / "c"
    real_build = RtxBuilder.build

    def dying_build(self: RtxBuilder, request: Any, dest: Path) -> None:
        real_build(self, request, dest)
        if request.compute_capability == "8.9":
            data = dest.read_bytes()
            dest.write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt  # like Ctrl-C / SIGTERM in the middle of writing

    monkeypatch.setattr(RtxBuilder, "build", dying_build)
    assert tools.run(spec, model_dir, out, cache) == 130
    assert not out.exists() and not list(tmp_path.glob(".e.partial-*"))
    entries = sorted(p.name for p in cache.iterdir() if p.name != "timing")
    assert len(entries) == 1 and entries[0].startswith("tensorrt-rtx-sm86-fp32-")  # only the completed one
    monkeypatch.setattr(RtxBuilder, "build", real_build)
    assert tools.run(spec, model_dir, out, cache) == 0
    doc = tools.read(out)
    assert [e["cacheHit"] for e in doc["engines"]] == [True, False]


def test_failure_keeps_existing_engines(
    fp16_build: dict[str, Path], uncalibrated_model_dir: Path, tools: Any, write_spec: Any
) -> None:
    out, cache = fp16_build["out"], fp16_build["cache"]
    before, cache_before = _snapshot(out), _snapshot(cache)
    assert tools.run(write_spec({"precision": "int8"}), uncalibrated_model_dir, out, cache) != 0
    assert _snapshot(out) == before and _snapshot(cache) == cache_before


def test_onnxruntime_backend(tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any) -> None:
    spec = write_spec({"backend": "onnxruntime", "precision": "fp32"})
    assert tools.run(spec, model_dir, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["engines"] == [] and doc["computeCapabilities"] == []
    assert (tmp_path / "e" / "onnxruntime" / "model.optimized.onnx").is_file()


def test_default_cache_next_to_output_and_env(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec({"precision": "fp32"})
    monkeypatch.delenv("TRTFORGE_ENGINE_CACHE", raising=False)
    assert tools.run(spec, model_dir, tmp_path / "out" / "e") == 0
    assert list((tmp_path / "out" / ".engine-cache").glob("tensorrt-rtx-sm89-fp32-*"))
    monkeypatch.setenv("TRTFORGE_ENGINE_CACHE", str(tmp_path / "envcache"))
    assert tools.run(spec, model_dir, tmp_path / "out" / "e2") == 0
    assert list((tmp_path / "envcache").glob("tensorrt-rtx-sm89-fp32-*"))


def test_termination_message(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = tmp_path / "termination-log"
    monkeypatch.setenv("TRTFORGE_TERMINATION_MESSAGE_PATH", str(msg))
    assert tools.run(write_spec({"precision": "fp32"}), model_dir, tmp_path / "e", tmp_path / "c") == 0
    report = json.loads(msg.read_text())
    assert report["ok"] and report["stage"] == "convert" and report["precision"] == "fp32"
    assert report["sizeBytes"] > 0 and report["top1Drop"] == 0.0 and report["computeCapabilities"] == ["8.9"]
    assert (
        tools.run(write_spec({"computeCapabilities": ["9.0"]}), model_dir, tmp_path / "f", tmp_path / "c")
        == 6
    )
    report = json.loads(msg.read_text())
    assert not report["ok"] and "9.0" in report["error"]


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("engine", "code", "message"),
    [
        ({"computeCapabilities": ["9.0"]}, 6, "TensorRT-RTX does not support compute capability 9.0 (Hopper"),
        (
            {"computeCapabilities": ["8.9", "7.5"], "precision": "fp32"},
            6,
            "cannot build FP32 GEMMs for compute capability 7.5",
        ),
        ({"batch": {"min": 8, "opt": 4, "max": 16}}, 2, "batch needs min <= opt <= max"),
        ({"backend": "tensorrt"}, 6, "backend tensorrt needs the Python module 'tensorrt'"),
    ],
)
def test_bad_engine_spec(
    tmp_path: Path,
    model_dir: Path,
    tools: Any,
    write_spec: Any,
    capsys: Any,
    engine: dict,
    code: int,
    message: str,
) -> None:
    if engine.get("backend") == "tensorrt" and importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here: the missing-library message cannot be exercised")
    assert tools.run(write_spec(engine), model_dir, tmp_path / "e", tmp_path / "c") == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_unordered_batch_profile_bypassing_validation(
    tmp_path: Path, model_dir: Path, tools: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec object whose profile skipped validation (e.g. built with model_construct) is still refused."""
    from trtforge_runtime.errors import ConversionError
    from trtforge_runtime.spec import load
    from trtforge_runtime.spec.model import BatchProfile

    real = load.load_manifest

    def patched(path: Any) -> Any:
        md = real(path)
        md.spec.engine.batch = BatchProfile.model_construct(min=1, opt=128, max=64)
        return md

    monkeypatch.setattr(command, "load_manifest", patched)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(tools.manifest()))
    settings = command.ConvertSettings(spec, model_dir, tmp_path / "e", tmp_path / "c", None)
    with pytest.raises(ConversionError, match="opt 128 > max 64"):
        command.convert(settings)


def test_compute_capability_flag_outside_the_spec(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, capsys: Any
) -> None:
    assert (
        tools.run(write_spec(), model_dir, tmp_path / "e", tmp_path / "c", "--compute-capability", "8.6") == 6
    )
    assert (
        "--compute-capability 8.6 is not in spec.engine.computeCapabilities (8.9)" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a model at all\n", "is not an ONNX model"),
        ("truncate", "not"),
        (b"", "is not an ONNX model"),
    ],
)
def test_corrupt_or_non_onnx_model(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, capsys: Any, content: Any, message: str
) -> None:
    data = (model_dir / "model.onnx").read_bytes()
    payload = data[: len(data) // 3] if content == "truncate" else content
    folder = tools.write_model_folder(tmp_path / "m", payload, model_dir)
    assert tools.run(write_spec(), folder, tmp_path / "e", tmp_path / "c") == 5
    err = capsys.readouterr().err
    assert str(folder / "model.onnx") in err and message in err
    assert not (tmp_path / "e").exists()


def test_model_changed_after_training(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, capsys: Any
) -> None:
    folder = tools.write_model_folder(tmp_path / "m", (model_dir / "model.onnx").read_bytes(), model_dir)
    meta = json.loads((folder / "manifest.json").read_text())
    meta["digest"] = "sha256:" + "0" * 64
    (folder / "manifest.json").write_text(json.dumps(meta))
    assert tools.run(write_spec(), folder, tmp_path / "e", tmp_path / "c") == 5
    assert "does not match its manifest" in capsys.readouterr().err


def test_foreign_output_folder_is_refused(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, capsys: Any
) -> None:
    out = tmp_path / "e"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert tools.run(write_spec(), model_dir, out, tmp_path / "c") == 5
    assert "holds no engine.json" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["notes.txt"]


# --------------------------------------------------------------------------------------- model.source


def test_onnx_source_without_data_gates_on_synthetic_rows(
    tmp_path: Path, model_dir: Path, tools: Any, capsys: Any
) -> None:
    src = {"source": {"uri": f"file://{model_dir / 'model.onnx'}", "format": "onnx"}}
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(tools.manifest({"precision": "fp16"}, src)))
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["gate"]["data"] == "synthetic" and doc["precision"] == "fp16"
    spec.write_text(yaml.safe_dump(tools.manifest({"precision": "int8"}, src)))
    assert tools.run(spec, None, tmp_path / "f", tmp_path / "c") == 6
    assert "int8 needs calibration data" in capsys.readouterr().err


def test_onnx_source_with_dataset_calibrates_int8(tmp_path: Path, model_dir: Path, tools: Any) -> None:
    pytest.importorskip("trtforge_runtime.train.datasets", reason="the training engineer's dataset module")
    src = {
        "source": {
            "uri": str(model_dir / "model.onnx"),
            "format": "onnx",
            "inputName": "pixels",
            "dataset": {"uri": "builtin://digits"},
        }
    }
    spec = tmp_path / "s.yaml"
    spec.write_text(
        yaml.safe_dump(tools.manifest({"precision": "int8", "accuracy": {"maxTop1Drop": 0.03}}, src))
    )
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["precision"] == "int8" and doc["gate"]["data"] == "test"


def test_missing_source_file(tmp_path: Path, tools: Any, capsys: Any) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        yaml.safe_dump(tools.manifest(None, {"source": {"uri": "/nope/model.onnx", "format": "onnx"}}))
    )
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 5
    assert "model not found: /nope/model.onnx" in capsys.readouterr().err


def test_savedmodel_source_goes_through_tf2onnx(tmp_path: Path, model_dir: Path, tools: Any) -> None:
    """A Keras SavedModel named by spec.model.source is converted to ONNX (tf2onnx, opset 17) first."""
    keras = pytest.importorskip("keras")
    import subprocess
    import sys

    saved = tmp_path / "saved_model"
    script = (
        "import keras, numpy as np; keras.utils.set_random_seed(0); "
        "m = keras.Sequential([keras.Input((64,), name='pixels'), keras.layers.Dense(16, activation='relu'), "
        "keras.layers.Dense(10, activation='softmax')]); "
        f"m.export({str(saved)!r}, format='tf_saved_model', verbose=False)"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    assert keras is not None and (saved / "saved_model.pb").is_file()
    src = {"source": {"uri": str(saved), "format": "savedmodel", "dataset": {"uri": "builtin://digits"}}}
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(tools.manifest({"precision": "fp16"}, src)))
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    assert doc["model"]["inputs"][0]["name"] == "pixels" and doc["model"]["inputs"][0]["shape"] == [-1, 64]
    assert doc["model"]["outputs"][0]["shape"] == [-1, 10] and len(doc["engines"]) == 1
    onnx_model = onnx.load(str(tmp_path / "e" / "onnxruntime" / "model.onnx"))
    assert onnx_model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_not_a_savedmodel(tmp_path: Path, tools: Any, capsys: Any) -> None:
    (tmp_path / "empty").mkdir()
    spec = tmp_path / "s.yaml"
    spec.write_text(
        yaml.safe_dump(
            tools.manifest(None, {"source": {"uri": str(tmp_path / "empty"), "format": "savedmodel"}})
        )
    )
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 5
    assert "is not a SavedModel folder (no saved_model.pb)" in capsys.readouterr().err


def test_converts_a_real_trtforge_train_output(tmp_path: Path, tools: Any) -> None:
    """The training stage's own output folder (Keras -> ONNX), 2 epochs, converted with `best`."""
    pytest.importorskip("keras")
    import subprocess
    import sys

    doc = tools.manifest({"precision": "best", "computeCapabilities": ["8.6", "8.9"]})
    doc["spec"]["model"]["train"].update({"epochs": 2, "seed": 1, "resources": {"gpus": 0}})
    doc["spec"]["model"]["train"]["architecture"]["layers"] = [
        {"type": "Dense", "units": 32, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(doc))
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "trtforge_runtime.cli",
            "train",
            "-f",
            str(spec),
            "-o",
            str(tmp_path / "m"),
            "--progress",
            "none",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if trained.returncode != 0:
        pytest.fail(f"trtforge train failed: {trained.stderr[-2000:]}")
    assert tools.run(spec, tmp_path / "m", tmp_path / "e", tmp_path / "c") == 0
    engine = tools.read(tmp_path / "e")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert engine["model"]["digest"] == manifest["digest"]
    assert (
        engine["model"]["inputs"] == manifest["inputs"] and engine["model"]["outputs"] == manifest["outputs"]
    )
    assert engine["precision"] in ("int8", "fp16", "fp32") and len(engine["engines"]) == 2
    assert engine["gate"]["candidates"][-1]["passed"]
