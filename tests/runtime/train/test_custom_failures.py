"""Every way the user's training code can fail, through `trtforge train` as the training Job runs it.

The operator runs `trtforge train -f MANIFEST -o ARTIFACTS/NS/NAME/models/REV --overwrite`; the artifact
folder already holds earlier revisions (and, on a retried Job, this revision's model). For each failure
(the code exits non-zero, runs past custom.timeoutSeconds, writes nothing, writes something that is not
a model, or its entryPoint names a missing module, a missing function or something not callable) the
command exits with the failure table's code for TrainingError, the termination message names the failure
(customCode) and the reason, the error names what is wrong, and every stored revision is byte-for-byte
what it was, with no temporary folder left beside them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from trtforge_runtime.errors import TrainingError, failure_table

TrainCli = Callable[..., tuple[int, str, str]]

WRITE = "import os, pathlib\npathlib.Path(os.environ['TRTFORGE_OUTPUT_DIR'], '{name}').write_text('x')\n"

# (custom section, the user's file job.py, customCode, words the error must contain)
CASES: dict[str, tuple[dict[str, Any], str, str, list[str]]] = {
    "exits-non-zero": (
        {"command": [sys.executable, "job.py"]},
        "import sys\nprint('epoch 1', file=sys.stderr)\nsys.exit(3)\n",
        "exited",
        ["job.py' exited with status 3; no model was taken", "epoch 1"],
    ),
    "crashes-on-a-signal": (  # SIGKILL/SIGTERM from outside are retried instead: test_child.py
        {"command": [sys.executable, "job.py"]},
        "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n",
        "exited",
        ["job.py' was killed by signal 11 (SIGSEGV); no model was taken"],
    ),
    "times-out": (
        {"command": [sys.executable, "job.py"], "timeoutSeconds": 1},
        "import time\ntime.sleep(60)\n",
        "timedOut",
        ["did not finish within spec.model.train.custom.timeoutSeconds (1 s) and was stopped"],
    ),
    "writes-nothing": (
        {"command": [sys.executable, "job.py"]},
        "print('done')\n",
        "noModel",
        ["custom training code wrote nothing to $TRTFORGE_OUTPUT_DIR"],
    ),
    "writes-no-model-file": (
        {"command": [sys.executable, "job.py"]},
        WRITE.format(name="weights.h5"),
        "noModel",
        ["found weights.h5 but no SavedModel (saved_model.pb) or .keras file"],
    ),
    "writes-junk-keras": (
        {"command": [sys.executable, "job.py"]},
        WRITE.format(name="model.keras"),
        "notAModel",
        ["model.keras written by the custom training code is not a Keras model"],
    ),
    "entry-point-module-missing": (
        {"entryPoint": "no_such_module:train"},
        "x = 1\n",
        "exited",
        ["entryPoint no_such_module:train: cannot import 'no_such_module'"],
    ),
    "entry-point-function-missing": (
        {"entryPoint": "job:train"},
        "def fit(ctx):\n    return None\n",
        "exited",
        ["entryPoint job:train: job has no function 'train'"],
    ),
    "entry-point-not-callable": (
        {"entryPoint": "job:train"},
        "train = {'epochs': 3}\n",
        "exited",
        ["entryPoint job:train: job.train is a dict, not a function"],
    ),
    "entry-point-returns-no-model": (
        {"entryPoint": "job:train"},
        "def train(ctx):\n    return 0.97\n",
        "exited",
        ["entryPoint job:train returned a float, not a Keras model"],
    ),
}


def _tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder` (what "byte-for-byte the same" compares)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _stored_revision(folder: Path, marker: str) -> None:
    """A published model folder as `trtforge train` leaves it (contents made up: nothing may read them)."""
    (folder / "saved_model" / "variables").mkdir(parents=True)
    (folder / "saved_model" / "saved_model.pb").write_bytes(b"pb " + marker.encode())
    (folder / "model.onnx").write_bytes(b"onnx " + marker.encode())
    (folder / "manifest.json").write_text(json.dumps({"digest": f"sha256:{marker}", "name": "custom"}))
    (folder / "metrics.json").write_text(json.dumps({"gate": {"passed": True}}))


def _manifest(tmp_path: Path, custom: dict[str, Any]) -> Path:
    doc = {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "custom", "namespace": "team"},
        "spec": {
            "model": {
                "train": {
                    "dataset": {"uri": "builtin://digits"},
                    "custom": {"code": "job.py", **custom},
                    "epochs": 1,
                }
            }
        },
    }
    path = tmp_path / "md.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_failing_code_is_named_and_every_stored_revision_is_kept(
    case: str, train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    custom, body, kind, words = CASES[case]
    (tmp_path / "job.py").write_text(textwrap.dedent(body))
    models = tmp_path / "artifacts" / "team" / "custom" / "models"
    _stored_revision(models / "1", "earlier")
    _stored_revision(models / "2", "this-revision")  # a retried Job: this revision was published before
    before = _tree(models)

    code, _, err = train_cli(_manifest(tmp_path, custom), models / "2", "--overwrite")

    assert code == TrainingError.exit_code, err
    assert failure_table()[code].reason == TrainingError.reason and failure_table()[code].permanent
    for word in words:
        assert word in err, err
    report = json.loads(termination_log.read_text())
    assert report["ok"] is False and report["stage"] == "train"
    assert report["reason"] == "TrainingError" and report["customCode"] == kind, report
    assert words[0] in report["error"]
    assert _tree(models) == before
    assert sorted(p.name for p in models.iterdir()) == ["1", "2"]  # no .partial-/.old- folder left


def test_a_new_revision_is_not_created_when_the_code_fails(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path
) -> None:
    (tmp_path / "job.py").write_text("import sys\nsys.exit('out of memory')\n")
    models = tmp_path / "artifacts" / "team" / "custom" / "models"
    _stored_revision(models / "1", "earlier")
    before = _tree(models)
    code, _, err = train_cli(
        _manifest(tmp_path, {"command": [sys.executable, "job.py"]}), models / "2", "--overwrite"
    )
    assert code == TrainingError.exit_code and "out of memory" in err
    assert _tree(models) == before and sorted(p.name for p in models.iterdir()) == ["1"]


def test_trtforge_local_stops_at_failing_code_and_keeps_the_model_it_served_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The newcomer's loop: `trtforge local` served a model, the script is edited and now crashes; the
    command exits 9 naming the failure, serves nothing, and the earlier model and engine stay as they were."""
    from trtforge_runtime.cli import main

    (tmp_path / "job.py").write_text("raise SystemExit('KeyError: image')\n")
    work = tmp_path / "work"
    _stored_revision(work / "custom" / "model", "served-yesterday")
    (work / "custom" / "engine").mkdir(parents=True)
    (work / "custom" / "engine" / "engine.json").write_text('{"format": "trtforge.engine/v1"}')
    before = _tree(work)
    manifest = _manifest(tmp_path, {"command": [sys.executable, "job.py"]})
    code = main(["local", str(manifest), "--workdir", str(work), "--port", "0"])
    out, err = capsys.readouterr()
    assert code == TrainingError.exit_code, err
    assert "job.py' exited with status 1; no model was taken" in err and "KeyError: image" in err
    assert "[3/3] serve" not in out and "[2/3] convert" not in out
    assert _tree(work) == before
    assert sorted(p.name for p in (work / "custom").iterdir()) == ["engine", "model"]
