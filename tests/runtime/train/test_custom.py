"""`trtforge train` with the user's own training code (spec.model.train.custom), end to end.

The successful runs train real Keras models in a child process; the failure cases run tiny Python
scripts, one per way user code can fail, and check the error names which way it failed.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
TrainCli = Callable[..., tuple[int, str, str]]

SAVEDMODEL_SCRIPT = """
import keras
from trtforge_runtime.train.custom import Context

ctx = Context.from_env()
keras.utils.set_random_seed(ctx.seed)
inputs = keras.Input(shape=ctx.x_train.shape[1:], name="features")
x = keras.layers.Rescaling(1.0 / 16)(inputs)
outputs = keras.layers.Dense(10, activation="softmax", name="scores")(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(ctx.x_train, ctx.y_train, epochs=ctx.epochs, verbose=0)
model.export(str(ctx.output_dir / "exported"), format="tf_saved_model", verbose=False)
"""


def manifest(tmp_path: Path, custom: dict[str, Any], name: str = "custom", **train: Any) -> Path:
    doc = {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "train": {"dataset": {"uri": "builtin://digits"}, "custom": custom, "epochs": 3, **train}
            }
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def script(tmp_path: Path, name: str, body: str) -> str:
    (tmp_path / name).write_text(textwrap.dedent(body))
    return name


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_the_example_entry_point_with_a_custom_layer(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    import keras
    import onnxruntime as ort

    doc = yaml.safe_load((REPO / "examples" / "custom-train.yaml").read_text())
    doc["spec"]["model"]["train"]["epochs"] = 5
    doc["spec"]["model"]["train"]["custom"]["code"] = str(REPO / "examples" / "custom_train.py")
    path = tmp_path / "custom-train.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "model"
    code, stdout, err = train_cli(path, out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "metrics.json",
        "model.keras",
        "model.onnx",
        "samples.npz",
        "saved_model",
    ]
    metrics = read(out / "metrics.json")
    assert metrics["test"]["accuracy"] >= 0.9 and metrics["gate"]["passed"] is True
    assert metrics["onnxParity"]["maxAbsDiff"] < 1e-4 and metrics["onnxParity"]["argmaxAgreement"] == 1.0
    manifest_json = read(out / "manifest.json")
    assert manifest_json["inputs"] == [{"name": "pixels", "shape": [-1, 64], "datatype": "FP32"}]
    assert manifest_json["outputs"] == [{"name": "probabilities", "shape": [-1, 10], "datatype": "FP32"}]
    from trtforge_runtime.train.custom import tree_digest

    assert manifest_json["codeDigest"] == tree_digest(REPO / "examples" / "custom_train.py")
    assert "test accuracy" in stdout and read(termination_log)["ok"] is True

    # the stored model is the user's: its custom layer loads, and the ONNX file answers as Keras does
    sys.path.insert(0, str(REPO / "examples"))
    try:
        import custom_train  # registers Standardize

        model = keras.models.load_model(out / "model.keras", compile=False)
    finally:
        sys.path.remove(str(REPO / "examples"))
    assert any(isinstance(layer, custom_train.Standardize) for layer in model.layers)
    with np.load(out / "samples.npz") as samples:
        x = samples["x_test"]
    want = np.asarray(model.predict(x, verbose=0))
    got = ort.InferenceSession(str(out / "model.onnx")).run(["probabilities"], {"pixels": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_command_writing_a_savedmodel_then_failures_keep_it(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    script(tmp_path, "export_sm.py", SAVEDMODEL_SCRIPT)
    out = tmp_path / "model"
    code, _, err = train_cli(
        manifest(
            tmp_path,
            # Keras's export names the signature's output output_0: outputName serves it as `scores`
            {"command": [sys.executable, "export_sm.py"], "code": ".", "outputName": "scores"},
        ),
        out,
    )
    assert code == 0, err
    doc = read(out / "manifest.json")
    assert [t["name"] for t in doc["inputs"]] == ["features"] and [t["name"] for t in doc["outputs"]] == [
        "scores"
    ]
    assert read(out / "metrics.json")["test"]["accuracy"] > 0.5
    assert (out / "saved_model" / "saved_model.pb").is_file() and not (out / "model.keras").exists()
    digest = doc["digest"]

    # a crash: non-zero exit, its stderr quoted, the stored model untouched even with --overwrite
    script(
        tmp_path, "crash.py", "import sys\nprint('loading shards...')\nsys.exit('boom: CUDA out of memory')\n"
    )
    code, _, err = train_cli(
        manifest(tmp_path, {"command": [sys.executable, "crash.py"], "code": "."}), out, "--overwrite"
    )
    assert code == 9
    assert f"custom training code '{sys.executable} crash.py' exited with status 1; no model was taken" in err
    assert "boom: CUDA out of memory" in err
    report = read(termination_log)
    assert report["ok"] is False and report["customCode"] == "exited" and report["reason"] == "TrainingError"
    assert read(out / "manifest.json")["digest"] == digest
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        ("pass\n", "noModel", "wrote nothing to $TRTFORGE_OUTPUT_DIR"),
        (
            "import os, pathlib\n"
            "pathlib.Path(os.environ['TRTFORGE_OUTPUT_DIR'], 'notes.txt').write_text('hi')\n",
            "noModel",
            "found notes.txt but no SavedModel (saved_model.pb) or .keras file",
        ),
        (
            "import os, pathlib\n"
            "pathlib.Path(os.environ['TRTFORGE_OUTPUT_DIR'], 'model.keras').write_text('x')\n",
            "notAModel",
            "model.keras written by the custom training code is not a Keras model",
        ),
        (
            "import os, pathlib\nd = pathlib.Path(os.environ['TRTFORGE_OUTPUT_DIR'], 'sm')\nd.mkdir()\n"
            "(d / 'saved_model.pb').write_bytes(b'junk')\n",
            "notAModel",
            "SavedModel sm cannot be loaded",
        ),
    ],
)
def test_code_that_leaves_no_model_is_named(
    body: str, kind: str, message: str, train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    script(tmp_path, "job.py", body)
    out = tmp_path / "model"
    code, _, err = train_cli(
        manifest(tmp_path, {"command": [sys.executable, "job.py"], "code": "job.py"}), out
    )
    assert code == 9 and message in err, err
    assert read(termination_log)["customCode"] == kind
    assert not out.exists()


def test_a_model_that_does_not_fit_the_data_is_not_a_model(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    body = """
    import keras
    from trtforge_runtime.train.custom import Context

    def train(ctx: Context) -> keras.Model:
        inputs = keras.Input(shape=(5,), name="x")
        return keras.Model(inputs, keras.layers.Dense(2)(inputs))
    """
    script(tmp_path, "wrong_shape.py", body)
    code, _, err = train_cli(
        manifest(tmp_path, {"entryPoint": "wrong_shape:train", "code": "wrong_shape.py"}), tmp_path / "m"
    )
    assert code == 9 and "does not accept the dataset's rows of shape [64]" in err
    assert read(termination_log)["customCode"] == "notAModel"


def test_a_timeout_stops_the_code_and_its_children(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    body = """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open(os.environ["PIDS_FILE"], "w").write(f"{os.getpid()} {child.pid}")
    print("training forever", file=sys.stderr, flush=True)
    time.sleep(120)
    """
    script(tmp_path, "slow.py", body)
    start = time.monotonic()
    code, _, err = train_cli(
        manifest(
            tmp_path,
            {
                "command": [sys.executable, "slow.py"],
                "code": ".",
                "timeoutSeconds": 3,
                "env": {"PIDS_FILE": str(tmp_path / "pids")},
            },
        ),
        tmp_path / "m",
    )
    assert time.monotonic() - start < 60
    assert code == 9 and "did not finish within spec.model.train.custom.timeoutSeconds (3 s)" in err
    assert "training forever" in err and read(termination_log)["customCode"] == "timedOut"
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2
    for pid in pids:  # the whole process group was stopped (a zombie awaiting its reaper is stopped too)
        assert _gone(pid), f"process {pid} of the timed-out code still runs"


def _gone(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] in ("Z", "X")


def test_code_that_cannot_start_or_import_is_named(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    code, _, err = train_cli(
        manifest(tmp_path, {"command": [str(tmp_path / "no-such-binary")]}), tmp_path / "m"
    )
    assert code == 9 and "cannot be started" in err and read(termination_log)["customCode"] == "notStarted"
    script(tmp_path, "mod.py", "x = 1\n")
    code, _, err = train_cli(
        manifest(tmp_path, {"entryPoint": "mod:train", "code": "mod.py"}), tmp_path / "m"
    )
    assert code == 9 and "entryPoint mod:train: mod has no function 'train'" in err
    code, _, err = train_cli(
        manifest(tmp_path, {"entryPoint": "mod:train", "code": "missing/"}), tmp_path / "m"
    )
    assert code == 9 and "spec.model.train.custom.code missing/: not found" in err


def test_a_non_chief_worker_runs_the_code_and_publishes_nothing(
    train_cli: TrainCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    body = """
    import json, os, pathlib
    pathlib.Path(os.environ["SEEN"]).write_text(os.environ["TF_CONFIG"])
    """
    script(tmp_path, "worker.py", body)
    seen = tmp_path / "seen.json"
    custom = {"command": [sys.executable, "worker.py"], "code": ".", "env": {"SEEN": str(seen)}}
    code, stdout, err = train_cli(manifest(tmp_path, custom, workers=2), tmp_path / "model")
    assert code == 0, err
    assert json.loads(seen.read_text())["task"] == {"type": "worker", "index": 1}  # the code saw TF_CONFIG
    assert "as a non-chief worker: the custom training code finished; nothing written" in stdout
    assert not (tmp_path / "model").exists()


def test_sigterm_stops_the_code_and_leaves_nothing(tmp_path: Path) -> None:
    import signal
    import subprocess

    body = """
    import os, sys, time
    open(os.environ["PIDS_FILE"], "w").write(str(os.getpid()))
    print("custom code training", file=sys.stderr, flush=True)
    time.sleep(300)
    """
    script(tmp_path, "long.py", body)
    pids = tmp_path / "pids"
    custom = {"command": [sys.executable, "long.py"], "code": ".", "env": {"PIDS_FILE": str(pids)}}
    out = tmp_path / "model"
    env = {**os.environ, "TRTFORGE_TERMINATION_MESSAGE_PATH": str(tmp_path / "term")}
    cmd = [
        sys.executable,
        "-m",
        "trtforge_runtime.cli",
        "train",
        "-f",
        str(manifest(tmp_path, custom)),
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        assert proc.stderr is not None
        while time.monotonic() < deadline:  # wait until the user's code runs
            line = proc.stderr.readline()
            if "custom code training" in line:
                break
            assert line or proc.poll() is None, "trtforge train exited early"
        proc.send_signal(signal.SIGTERM)  # the Job's pod is stopped
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert _gone(int(pids.read_text())), "the user's code outlived trtforge train"
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert read(tmp_path / "term")["ok"] is False
