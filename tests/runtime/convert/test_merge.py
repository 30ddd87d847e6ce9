"""Per-architecture conversions into one engine folder: merge, concurrency, refusal, up-to-date re-runs.

The operator's `tensorrt` Jobs (one per compute capability) all write the same folder; TensorRT-RTX runs the
same code path with `--compute-capability`, so real RTX builds stand in for them here.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from trtforge_runtime.convert import publish
from trtforge_runtime.errors import ArtifactError, ConversionError, OutputConflictError


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# ------------------------------------------------------------------------ real conversions (TensorRT-RTX)


@pytest.mark.slow
def test_sequential_runs_per_capability_merge(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    msg = tmp_path / "termination-log"
    monkeypatch.setenv("TRTFORGE_TERMINATION_MESSAGE_PATH", str(msg))
    spec = write_spec({"precision": "fp16", "computeCapabilities": ["8.6", "8.9"]})
    out, cache = tmp_path / "e", tmp_path / "c"
    assert tools.run(spec, model_dir, out, cache, "--compute-capability", "8.9") == 0
    first = tools.read(out)
    ort_inode = (out / "onnxruntime" / "model.onnx").stat().st_ino
    assert first["computeCapabilities"] == ["8.9"]
    capsys.readouterr()

    assert tools.run(spec, model_dir, out, cache, "--compute-capability", "8.6") == 0
    assert "added 8.6 to" in capsys.readouterr().out
    doc = tools.read(out)
    assert doc["computeCapabilities"] == ["8.6", "8.9"]
    assert [e["file"] for e in doc["engines"]] == [
        "engines/tensorrt-rtx-sm86.engine",
        "engines/tensorrt-rtx-sm89.engine",
    ]
    assert all((out / e["file"]).stat().st_size == e["sizeBytes"] for e in doc["engines"])
    assert doc["engines"][1] == first["engines"][0]  # the first Job's entry is kept as it was
    assert doc["fingerprint"] == first["fingerprint"] and doc["referenceSample"] == first["referenceSample"]
    assert (out / "onnxruntime" / "model.onnx").stat().st_ino == ort_inode  # fallback reused, not replaced
    assert sorted(p.name for p in out.rglob("*") if p.name.startswith(".")) == []  # no temporaries left
    report = json.loads(msg.read_text())  # the Job reports its own engine (the operator sums over Jobs)
    assert report["ok"] and report["computeCapabilities"] == ["8.6"]
    assert report["folderComputeCapabilities"] == ["8.6", "8.9"]
    assert report["sizeBytes"] == doc["engines"][0]["sizeBytes"]

    # Re-running a capability already there: up to date, nothing touched.
    before = _snapshot(out)
    assert tools.run(spec, model_dir, out, cache, "--compute-capability", "8.9") == 0
    assert "is up to date" in capsys.readouterr().out
    assert _snapshot(out) == before
    # Without the flag (every capability of the spec): also up to date.
    assert tools.run(spec, model_dir, out, cache) == 0
    assert "is up to date" in capsys.readouterr().out
    assert _snapshot(out) == before


@pytest.mark.slow
def test_different_fingerprint_is_refused_untouched(
    tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any, capsys: Any
) -> None:
    out, cache = tmp_path / "e", tmp_path / "c"
    spec = write_spec({"precision": "fp32", "computeCapabilities": ["8.6", "8.9"]})
    assert tools.run(spec, model_dir, out, cache, "--compute-capability", "8.6") == 0
    before = _snapshot(out)
    other = write_spec({"precision": "fp16", "computeCapabilities": ["8.6", "8.9"]})
    assert tools.run(other, model_dir, out, cache, "--compute-capability", "8.9") == 5
    assert "already holds a different engine" in capsys.readouterr().err
    assert _snapshot(out) == before
    assert not list(tmp_path.glob(".e.partial-*"))


@pytest.mark.slow
def test_concurrent_processes_both_land(tmp_path: Path, model_dir: Path, tools: Any, write_spec: Any) -> None:
    spec = write_spec({"precision": "fp32", "computeCapabilities": ["8.6", "8.9", "12.0"]})
    out, cache = tmp_path / "shared" / "e", tmp_path / "shared" / ".engine-cache"
    code = "import sys; from trtforge_runtime import cli; raise SystemExit(cli.main(sys.argv[1:]))"

    def argv(cc: str) -> list[str]:
        flags = ["-f", str(spec), "--model", str(model_dir), "-o", str(out), "--cache", str(cache)]
        return [sys.executable, "-c", code, "convert", *flags, "--compute-capability", cc]

    procs = [
        subprocess.Popen(argv(cc), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for cc in ("12.0", "8.6")
    ]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    doc = tools.read(out)
    assert doc["computeCapabilities"] == ["8.6", "12.0"]
    assert [e["computeCapability"] for e in doc["engines"]] == ["8.6", "12.0"]
    assert all((out / e["file"]).is_file() for e in doc["engines"])
    assert (out / "onnxruntime" / "model.optimized.onnx").is_file()


# ------------------------------------------------------------------ publish() under contention (no builds)

FP = "sha256:" + "ab" * 32


def _doc(cc: str, precision: str = "fp16") -> dict[str, Any]:
    tag = "sm" + cc.replace(".", "")
    return {
        "fingerprint": FP,
        "precision": precision,
        "engines": [{"computeCapability": cc, "file": f"engines/trt-{tag}.engine", "sizeBytes": 4}],
        "onnxruntime": {
            "file": "onnxruntime/model.onnx",
            "optimizedFile": "onnxruntime/model.optimized.onnx",
        },
        "versions": {"x": cc},
    }


def _publish_one(out: str, src: str, cc: str, barrier: Any) -> None:
    src_dir = Path(src) / cc
    src_dir.mkdir(parents=True)
    tag = "sm" + cc.replace(".", "")
    (src_dir / f"trt-{tag}.engine").write_bytes(cc.encode().ljust(4, b"\0"))
    (src_dir / "model.onnx").write_bytes(b"onnx")
    (src_dir / "model.optimized.onnx").write_bytes(b"opt")
    doc = _doc(cc)
    barrier.wait()
    publish.publish(
        Path(out),
        FP,
        doc,
        [publish.Placement(src_dir / f"trt-{tag}.engine", doc["engines"][0]["file"])],
        [
            publish.Placement(src_dir / "model.onnx", "onnxruntime/model.onnx"),
            publish.Placement(src_dir / "model.optimized.onnx", "onnxruntime/model.optimized.onnx"),
        ],
        lock_timeout=60,
    )


def test_concurrent_publishers_lose_no_entry(tmp_path: Path) -> None:
    ccs = ["12.0", "8.0", "8.9", "7.5", "8.6", "12.1"]
    out = tmp_path / "e"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(ccs))
    procs = [
        ctx.Process(target=_publish_one, args=(str(out), str(tmp_path / "src"), cc, barrier)) for cc in ccs
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(ccs)
    doc = json.loads((out / "engine.json").read_text())
    want = ["7.5", "8.0", "8.6", "8.9", "12.0", "12.1"]
    assert doc["computeCapabilities"] == want
    assert [e["computeCapability"] for e in doc["engines"]] == want
    for e in doc["engines"]:
        assert (out / e["file"]).read_bytes().rstrip(b"\0") == e["computeCapability"].encode()
    assert not [p for p in out.rglob(".*")] and not list(tmp_path.glob(".e.partial-*"))


def test_publish_refuses_other_fingerprint_and_precision(tmp_path: Path) -> None:
    out, src = tmp_path / "e", tmp_path / "src"
    src.mkdir()
    for name in ("a.engine", "b.engine", "model.onnx", "model.optimized.onnx"):
        (src / name).write_bytes(name.encode())
    ort = [
        publish.Placement(src / "model.onnx", "onnxruntime/model.onnx"),
        publish.Placement(src / "model.optimized.onnx", "onnxruntime/model.optimized.onnx"),
    ]
    first = _doc("8.9")
    publish.publish(out, FP, first, [publish.Placement(src / "a.engine", "engines/trt-sm89.engine")], ort)
    before = _snapshot(out)
    with pytest.raises(OutputConflictError, match="different engine"):
        publish.publish(out, "sha256:other", _doc("8.6"), [], ort)
    with pytest.raises(ConversionError, match="share a precision"):
        publish.publish(
            out,
            FP,
            _doc("8.6", "fp32"),
            [publish.Placement(src / "b.engine", "engines/trt-sm86.engine")],
            ort,
        )
    assert _snapshot(out) == before
    # The same capability again: kept as it was, nothing added.
    doc, added = publish.publish(
        out, FP, _doc("8.9"), [publish.Placement(src / "b.engine", "engines/trt-sm89.engine")], ort
    )
    assert added == [] and doc["engines"] == first["engines"] and _snapshot(out) == before
    assert (out / "engines" / "trt-sm89.engine").read_bytes() == b"a.engine"


def test_excl_lock_fallback_takes_over_a_stale_lock(tmp_path: Path) -> None:
    lock = tmp_path / ".e.lock.excl"
    lock.write_text("{}")
    old = time.time() - publish.STALE_LOCK_SECONDS - 5
    os.utime(lock, (old, old))
    with publish._excl_lock(lock, timeout=5):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        # A live lock is waited for, then refused.
        with pytest.raises(ArtifactError, match="still held"), publish._excl_lock(lock, timeout=0.2):
            pass
    assert not lock.exists()


def test_flock_timeout_names_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "e"
    with publish.output_lock(out):
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()

        def contend() -> None:
            try:
                with publish.output_lock(out, timeout=0.2):
                    q.put("acquired")
            except ArtifactError as exc:
                q.put(str(exc))

        p = ctx.Process(target=contend)
        p.start()
        p.join(10)
        assert "still held by another conversion" in q.get(timeout=5)
