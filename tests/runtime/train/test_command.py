"""`trtforge train` end to end with real TensorFlow, tf2onnx and onnxruntime on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

TrainCli = Callable[..., tuple[int, str, str]]
WriteManifest = Callable[..., Path]


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_trains_and_writes_every_artifact(
    write_manifest: WriteManifest, train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    import onnx
    import onnxruntime as ort
    import tensorflow as tf

    out = tmp_path / "model"
    code, stdout, _ = train_cli(write_manifest(name="tiny-digits"), out)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "metrics.json",
        "model.onnx",
        "samples.npz",
        "saved_model",
    ]

    metrics = read(out / "metrics.json")
    assert set(metrics) == {
        "task",
        "gate",
        "train",
        "validation",
        "test",
        "epochs",
        "seconds",
        "onnxParity",
        "minAccuracy",
        "passed",
    }
    for split in ("train", "validation", "test"):
        assert set(metrics[split]) == {"accuracy", "loss"}
        assert 0.2 < metrics[split]["accuracy"] <= 1.0 and metrics[split]["loss"] > 0
    assert metrics["epochs"] == 2 and metrics["seconds"] > 0 and metrics["passed"] is True
    assert metrics["task"] == "classification"
    assert metrics["gate"]["passed"] is True and metrics["gate"]["checks"][0]["setting"] == (
        "spec.model.train.minAccuracy"
    )
    assert metrics["gate"]["why"].startswith(
        f"test accuracy {metrics['test']['accuracy']:.4g} >= minAccuracy 0"
    )
    parity = metrics["onnxParity"]
    assert parity["rows"] == 360 and parity["maxAbsDiff"] <= 1e-5 and parity["argmaxAgreement"] == 1.0

    manifest = read(out / "manifest.json")
    assert manifest["format"] == "trtforge.model/v1" and manifest["name"] == "tiny-digits"
    digest = manifest["digest"]
    assert digest.startswith("sha256:") and len(digest) == 71
    import hashlib

    assert digest == "sha256:" + hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert manifest["inputs"] == [{"name": "pixels", "shape": [-1, 64], "datatype": "FP32"}]
    assert manifest["outputs"] == [{"name": "probabilities", "shape": [-1, 10], "datatype": "FP32"}]
    assert {"trtforge", "tensorflow", "keras", "onnx", "tf2onnx", "python"} <= set(manifest["versions"])
    assert manifest["versions"]["tensorflow"] == tf.__version__
    assert manifest["spec"]["model"]["train"]["architecture"]["inputName"] == "pixels"
    assert manifest["spec"]["model"]["train"]["batchSize"] == 32
    assert manifest["createdAt"].endswith("Z")

    # ONNX: opset 17, named tensors, dynamic batch named "batch"
    proto = onnx.load(str(out / "model.onnx"))
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    for value in (proto.graph.input[0], proto.graph.output[0]):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"

    samples = np.load(out / "samples.npz")
    assert sorted(samples.files) == ["x_calib", "x_test", "y_test"]
    assert samples["x_test"].shape == (360, 64) and samples["x_test"].dtype == np.float32
    assert samples["y_test"].shape == (360,) and samples["y_test"].dtype == np.int64
    assert samples["x_calib"].shape == (1024, 64) and samples["x_calib"].dtype == np.float32

    # the ONNX model and the SavedModel agree with each other on any batch size
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    saved = tf.saved_model.load(str(out / "saved_model"))
    for batch in (1, 7, 360):
        x = samples["x_test"][:batch]
        got = session.run(["probabilities"], {"pixels": x})[0]
        served = saved.serve(tf.constant(x))  # the SavedModel keeps the trained output name
        assert set(served) == {"probabilities"}
        want = served["probabilities"].numpy()
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, want, atol=1e-5)
    accuracy = float(
        np.mean(np.argmax(session.run(None, {"pixels": samples["x_test"]})[0], 1) == samples["y_test"])
    )
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)

    assert "trained tiny-digits: test accuracy" in stdout and digest in stdout
    report = read(termination_log)
    assert report["ok"] is True and report["stage"] == "train"
    assert report["digest"] == digest and report["accuracy"] == metrics["test"]["accuracy"]
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_digits_example_reaches_its_accuracy(
    digits_manifest: Path, train_cli: TrainCli, tmp_path: Path
) -> None:
    spec = yaml.safe_load(digits_manifest.read_text())["spec"]["model"]["train"]
    assert spec["epochs"] == 30 and spec["minAccuracy"] >= 0.95
    code, stdout, _ = train_cli(digits_manifest, tmp_path / "m")
    assert code == 0, stdout
    metrics = read(tmp_path / "m" / "metrics.json")
    assert metrics["test"]["accuracy"] >= 0.95 and metrics["passed"] is True
    assert metrics["onnxParity"]["argmaxAgreement"] == 1.0 and metrics["onnxParity"]["maxAbsDiff"] <= 1e-5


def test_same_spec_and_data_give_the_same_digest(
    write_manifest: WriteManifest, train_cli: TrainCli, tmp_path: Path
) -> None:
    tiny = {
        "epochs": 1,
        "architecture": {"layers": [{"type": "Dense", "units": 10, "activation": "softmax"}]},
    }
    digests = []
    for i, seed in enumerate((5, 5, 6)):
        out = tmp_path / f"m{i}"
        assert train_cli(write_manifest({**tiny, "seed": seed}), out)[0] == 0
        digests.append(read(out / "manifest.json")["digest"])
        assert read(out / "manifest.json")["digest"] == read(out / "manifest.json")["digest"]
    assert digests[0] == digests[1], "two runs of the same spec gave different models"
    assert digests[2] != digests[0], "a different seed gave the same model"
    assert (tmp_path / "m0" / "model.onnx").read_bytes() == (tmp_path / "m1" / "model.onnx").read_bytes()


def test_quality_gate_fails_but_writes_metrics(
    write_manifest: WriteManifest, train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "gated"
    strict = write_manifest({"epochs": 1, "minAccuracy": 0.999})
    code, _, err = train_cli(strict, out)
    assert code == 4
    metrics = read(out / "metrics.json")
    measured = metrics["test"]["accuracy"]
    assert f"test accuracy {measured:.4f} is below the required spec.model.train.minAccuracy 0.999" in err
    assert "no model was published" in err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]
    assert metrics["passed"] is False and metrics["minAccuracy"] == 0.999 and metrics["onnxParity"] is None
    report = read(termination_log)
    assert report["ok"] is False and report["reason"] == "QualityGateError"
    assert report["accuracy"] == measured and report["minAccuracy"] == 0.999

    # a folder holding only a failed report may be replaced without --overwrite
    code, _, _ = train_cli(write_manifest({"epochs": 1}), out)
    assert code == 0 and (out / "model.onnx").exists()
    digest = read(out / "manifest.json")["digest"]

    # a failing run never destroys a model, even with --overwrite
    code, _, err = train_cli(strict, out, "--overwrite")
    assert code == 4 and "the existing model in the output folder was kept" in err
    assert read(out / "manifest.json")["digest"] == digest
    assert read(out / "metrics.rejected.json")["passed"] is False
    assert read(out / "metrics.json")["passed"] is True


def test_refuses_to_overwrite_without_the_flag(
    write_manifest: WriteManifest,
    train_cli: TrainCli,
    tmp_path: Path,
    leftovers: Callable[[Path], list[str]],
) -> None:
    out = tmp_path / "m"
    path = write_manifest({"epochs": 1})
    assert train_cli(path, out)[0] == 0
    before = (out / "manifest.json").read_text()
    code, _, err = train_cli(path, out)
    assert code == 5
    assert (
        f"output folder {out} already holds an existing artifact (model.onnx); refusing to overwrite" in err
    )
    assert "--overwrite" in err and (out / "manifest.json").read_text() == before
    time.sleep(1.1)  # createdAt has one-second resolution
    code, _, _ = train_cli(write_manifest({"epochs": 1, "seed": 99}), out, "--overwrite")
    assert code == 0
    after = read(out / "manifest.json")
    assert (
        after["createdAt"] != json.loads(before)["createdAt"]
        and after["spec"]["model"]["train"]["seed"] == 99
    )
    assert leftovers(tmp_path) == []
    # any other content is refused too
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = train_cli(path, other)
    assert code == 5 and "already holds files" in err and (other / "notes.txt").read_text() == "mine"


def test_a_failure_mid_run_leaves_nothing_half_written(
    write_manifest: WriteManifest,
    train_cli: TrainCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    leftovers: Callable[[Path], list[str]],
) -> None:
    from trtforge_runtime.train import export

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "m"
    path = write_manifest({"epochs": 1})
    monkeypatch.setattr(export, "export_onnx", interrupted)
    code, _, err = train_cli(path, out)
    assert code == 130 and "interrupted" in err
    assert not out.exists() and leftovers(tmp_path) == []
    # an existing model survives an interrupted --overwrite
    monkeypatch.undo()
    assert train_cli(path, out)[0] == 0
    digest = read(out / "manifest.json")["digest"]
    monkeypatch.setattr(export, "export_onnx", interrupted)
    assert train_cli(path, out, "--overwrite")[0] == 130
    assert read(out / "manifest.json")["digest"] == digest and leftovers(tmp_path) == []


def test_sigterm_during_training_leaves_nothing_behind(
    write_manifest: WriteManifest, tmp_path: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    out = tmp_path / "m"
    path = write_manifest({"epochs": 500})
    env = {**os.environ, "TRTFORGE_TERMINATION_MESSAGE_PATH": str(tmp_path / "term")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trtforge_runtime.cli", "train", "-f", str(path), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        assert proc.stderr is not None
        while time.monotonic() < deadline:  # wait until it is training, i.e. the partial folder exists
            line = proc.stderr.readline()
            if line.startswith("epoch 2/500"):
                break
            assert line or proc.poll() is None, "trtforge train exited early"
        assert leftovers(tmp_path), "no temporary folder while training"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert not out.exists() and leftovers(tmp_path) == []
    assert read(tmp_path / "term")["ok"] is False


def test_npz_and_csv_datasets_train_with_reshape_and_standardization(
    write_manifest: WriteManifest, train_cli: TrainCli, tmp_path: Path
) -> None:
    from sklearn.datasets import load_digits, load_iris

    digits = load_digits()
    np.savez(tmp_path / "digits.npz", images=digits.images, target=digits.target)
    cnn = {
        "dataset": {
            "uri": f"file://{tmp_path}/digits.npz",
            "features": "images",
            "label": "target",
            "normalize": "standard",
        },
        "architecture": {
            "inputShape": [8, 8, 1],
            "layers": [
                {"type": "Conv2D", "filters": 4, "kernelSize": [3, 3], "activation": "relu"},
                {"type": "MaxPooling2D"},
                {"type": "Flatten"},
                {"type": "Dense", "units": 10, "activation": "softmax"},
            ],
        },
    }
    assert train_cli(write_manifest(cnn), tmp_path / "cnn")[0] == 0
    manifest = read(tmp_path / "cnn" / "manifest.json")
    assert manifest["inputs"][0]["shape"] == [-1, 8, 8, 1]
    assert read(tmp_path / "cnn" / "metrics.json")["onnxParity"]["maxAbsDiff"] <= 1e-5
    assert np.load(tmp_path / "cnn" / "samples.npz")["x_test"].shape[1:] == (8, 8, 1)

    iris = load_iris()
    header = "a,b,c,d,species"
    rows = [",".join(f"{v:g}" for v in (*x, y)) for x, y in zip(iris.data, iris.target, strict=True)]
    (tmp_path / "iris.csv").write_text("\n".join([header, *rows]) + "\n")
    csv_spec = {
        "dataset": {"uri": str(tmp_path / "iris.csv"), "label": "species"},
        "loss": "categorical_crossentropy",
        "epochs": 3,
        "batchSize": 16,
        "architecture": {"layers": [{"type": "Dense", "units": 3, "activation": "softmax"}]},
    }
    assert train_cli(write_manifest(csv_spec), tmp_path / "iris")[0] == 0
    assert read(tmp_path / "iris" / "manifest.json")["inputs"][0] == {
        "name": "pixels",
        "shape": [-1, 4],
        "datatype": "FP32",
    }


@pytest.mark.parametrize(
    ("patch", "code", "message"),
    [
        ({"dataset": {"uri": "/nonexistent/data.npz"}}, 3, "dataset /nonexistent/data.npz: not found"),
        (
            {"dataset": {"uri": "s3://bucket/data.npz"}},
            3,
            "s3://bucket/data.npz: reading s3:// needs the s3 extra",
        ),
        ({"dataset": {"uri": "ftp://host/data.npz"}}, 2, "spec.model.train.dataset.uri: String should match"),
        (
            {"architecture": {"layers": [{"type": "LSTM", "units": 3}]}},
            2,
            "spec.model.train.architecture.layers[0].type: Input should be",
        ),
        (
            {"architecture": {"layers": [{"type": "Conv2D", "filters": 2, "kernelSize": [3, 3]}]}},
            2,
            "spec.model.train.architecture.layers[0] (Conv2D): cannot be applied to an input of shape "
            "(None, 64)",
        ),
        (
            {"architecture": {"layers": [{"type": "Dense", "units": 4, "activation": "softmax"}]}},
            2,
            "the model has 4 outputs but the dataset has 10 classes",
        ),
        (
            {
                "architecture": {
                    "inputShape": [9, 9],
                    "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10}],
                }
            },
            3,
            "rows have shape (64,) (64 values) but spec.model.train.architecture.inputShape is [9, 9]",
        ),
        ({"epochs": 0}, 2, "spec.model.train.epochs: Input should be greater than or equal to 1"),
    ],
)
def test_bad_input_is_named(
    write_manifest: WriteManifest,
    train_cli: TrainCli,
    tmp_path: Path,
    patch: dict[str, Any],
    code: int,
    message: str,
) -> None:
    if "s3://" in str(patch):
        import importlib.util

        if importlib.util.find_spec("s3fs") is not None:
            pytest.skip("s3fs is installed")
    got, _, err = train_cli(write_manifest({**patch, "epochs": patch.get("epochs", 1)}), tmp_path / "m")
    assert got == code, err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("files", "patch", "message"),
    [
        (
            {"d.npz": {"x": np.zeros((20, 3)), "y": np.zeros(19)}},
            {},
            "features 'x' has shape (20, 3) but label 'y' has shape (19,)",
        ),
        (
            {"d.npz": {"pixels": np.zeros((20, 3)), "y": np.zeros(20)}},
            {},
            "features key 'x' not in the archive (set spec.model.train.dataset.features); "
            "available keys: pixels, y",
        ),
        (
            {"d.csv": "a,b,y\n1,2,0\n"},
            {"label": "klass"},
            "label column 'klass' (spec.model.train.dataset.label) is not in the CSV header; "
            "columns: a, b, y",
        ),
    ],
)
def test_bad_dataset_files_are_named(
    write_manifest: WriteManifest,
    train_cli: TrainCli,
    tmp_path: Path,
    files: dict[str, Any],
    patch: dict[str, Any],
    message: str,
) -> None:
    ((name, content),) = files.items()
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        np.savez(path, **content)
    code, _, err = train_cli(write_manifest({"dataset": {"uri": str(path), **patch}}), tmp_path / "m")
    assert code == 3 and message in err and str(path) in err
    assert not (tmp_path / "m").exists()


def test_bad_manifests(train_cli: TrainCli, tmp_path: Path, termination_log: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("spec: [unclosed\n")
    code, _, err = train_cli(bad_yaml, tmp_path / "m")
    assert code == 2 and "not valid YAML" in err and "Traceback" not in err
    assert read(termination_log)["reason"] == "ManifestError"

    other = tmp_path / "pod.yaml"
    other.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    code, _, err = train_cli(other, tmp_path / "m")
    assert code == 2 and "not a ModelDeployment" in err

    source = tmp_path / "source.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "trtforge.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "s"},
                "spec": {"model": {"source": {"uri": "/m/model.onnx", "format": "onnx"}}},
            }
        )
    )
    code, _, err = train_cli(source, tmp_path / "m")
    assert code == 2 and "spec.model.train is not set" in err
    assert not (tmp_path / "m").exists()


def test_mirrored_strategy_over_two_devices_trains_for_real(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """MirroredStrategy with two replicas (two logical CPUs stand in for two GPUs), all-reduce included."""
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from trtforge_runtime.spec.load import load_manifest
from trtforge_runtime.train.strategy import StrategyPlan
from trtforge_runtime.train.trainer import train
spec = load_manifest({str(write_manifest({"epochs": 3, "batchSize": 32}))!r}).spec.model.train
result = train(spec, progress="none", plan=StrategyPlan(kind="mirrored", devices=("/cpu:0", "/cpu:1")))
replicas = result.model.distribute_strategy.num_replicas_in_sync
print("REPLICAS", tf.distribute.get_strategy().num_replicas_in_sync, replicas)
print("ACCURACY", result.test_accuracy)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "REPLICAS 1 2" in done.stdout
    accuracy = float(done.stdout.split("ACCURACY")[1])
    assert accuracy > 0.2  # better than chance (0.1) after 3 epochs of a tiny model


def test_multi_worker_training_with_tf_config(write_manifest: WriteManifest, tmp_path: Path) -> None:
    """Two worker processes on localhost join one MultiWorkerMirroredStrategy; only the chief publishes."""
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    path = write_manifest({"epochs": 2, "workers": 2})
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "TRTFORGE_TERMINATION_MESSAGE_PATH": str(tmp_path / f"term{index}"),
        }
        cmd = [
            sys.executable,
            "-m",
            "trtforge_runtime.cli",
            "train",
            "-f",
            str(path),
            "-o",
            str(tmp_path / f"out{index}"),
        ]
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    results = []
    for proc in procs:
        try:
            results.append(proc.communicate(timeout=300))
        finally:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
    assert "MultiWorkerMirroredStrategy (worker 0 of 2 workers, chief)" in results[0][1]
    assert "MultiWorkerMirroredStrategy (worker 1 of 2 workers)" in results[1][1]
    assert (tmp_path / "out0" / "model.onnx").exists()
    assert not (tmp_path / "out1").exists()
    chief, worker = read(tmp_path / "term0"), read(tmp_path / "term1")
    assert chief["ok"] and chief["published"] and worker["ok"] and not worker["published"]
    assert chief["accuracy"] == worker["accuracy"]  # the replicas trained the same weights
