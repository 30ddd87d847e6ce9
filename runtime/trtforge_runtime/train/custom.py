"""Custom training code (`spec.model.train.custom`): run the user's code, then take over its model.

The contract (docs/training.md, "Custom training code"): the code runs as a child process of
`trtforge train`, in its own process group, in a fresh working folder (a copy of `custom.code`, or the
current folder when unset), with the environment of the stage (TF_CONFIG, CUDA_VISIBLE_DEVICES...) plus

    TRTFORGE_OUTPUT_DIR   an empty folder: write a SavedModel (saved_model.pb) or one .keras file there
    TRTFORGE_DATA         .npz with x_train, y_train, x_val, y_val (the test split is held back for the gate);
                          empty when spec.model.train.dataset is not set
    TRTFORGE_SPEC         JSON of spec.model (task, train: epochs, batchSize, seed, loss, ...)
    TRTFORGE_TASK, TRTFORGE_EPOCHS, TRTFORGE_BATCH_SIZE, TRTFORGE_SEED, TRTFORGE_WORKDIR

`custom.command` is run as given; `custom.entryPoint: module:function` runs
`python -m trtforge_runtime.train.custom module:function`, which calls `function(Context.from_env())`
and saves a returned Keras model as model.keras. `Context.from_env()` works in a command's script too.

Code without a dataset, and code whose model has several inputs, owns its data: it also writes its
held-out rows to $TRTFORGE_OUTPUT_DIR/samples.npz (`Context.write_samples`; keys x_test.<input>, y_test,
optional x_calib.<input>, checked by trtforge_runtime.train.heldout).

A run that cannot start, exits non-zero, outlives `timeoutSeconds`, writes nothing, or writes something
that is not a model raises `TrainingError` naming which (`.summary["customCode"]`: notStarted, exited,
timedOut, noModel, notAModel; badSamples for held-out rows), with the last lines of the code's stderr.
"""

from __future__ import annotations

import collections
import importlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime.errors import TrainingError
from trtforge_runtime.spec.model import CustomTraining, ModelDeployment
from trtforge_runtime.train import child, heldout
from trtforge_runtime.train.heldout import SAMPLES_FILE, HeldOut, ModelInput, samples_error

log = logging.getLogger(__name__)

OUTPUT_ENV = "TRTFORGE_OUTPUT_DIR"
DATA_ENV = "TRTFORGE_DATA"
SPEC_ENV = "TRTFORGE_SPEC"
KERAS_FILE = "model.keras"
STDERR_TAIL = 15
KILL_GRACE_SECONDS = 10.0
NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def custom_error(kind: str, message: str, tail: list[str] | None = None) -> TrainingError:
    text = message
    if tail:
        text += "\nlast lines of its stderr:\n  " + "\n  ".join(tail)
    err = TrainingError(text)
    err.summary = {"customCode": kind}  # type: ignore[attr-defined]
    return err


# ------------------------------------------------------------------------------------------ contract


@dataclass
class Context:
    """What the user's code gets: where to write, the data, the spec (also readable from the env).

    Without spec.model.train.dataset the arrays are None: the code loads its own data and hands its
    held-out rows over with `write_samples`.
    """

    output_dir: Path
    x_train: np.ndarray | None
    y_train: np.ndarray | None
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    spec: dict[str, Any]
    workdir: Path = field(default_factory=Path.cwd)

    def write_samples(
        self,
        x_test: np.ndarray | dict[str, np.ndarray],
        y_test: np.ndarray,
        x_calib: np.ndarray | dict[str, np.ndarray] | None = None,
    ) -> Path:
        """Hand trtforge the held-out rows (never trained on) for the export check and the quality gate:
        `x_test` one array per model input name ({"image": ..., "tabular": ...}; one array for a model of
        one input), `y_test` their labels, `x_calib` optional rows for int8 calibration. Written to
        $TRTFORGE_OUTPUT_DIR/samples.npz (keys x_test.<input>, y_test, x_calib.<input>)."""
        return heldout.write(self.output_dir / SAMPLES_FILE, x_test, y_test, x_calib)

    @property
    def train(self) -> dict[str, Any]:
        return dict(self.spec.get("train") or {})

    @property
    def task(self) -> str:
        return str(self.spec.get("task", "classification"))

    @property
    def epochs(self) -> int:
        return int(self.train.get("epochs", 10))

    @property
    def batch_size(self) -> int:
        return int(self.train.get("batchSize", 32))

    @property
    def seed(self) -> int:
        return int(self.train.get("seed", 42))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Context:
        env = dict(os.environ if env is None else env)
        missing = [k for k in (OUTPUT_ENV, SPEC_ENV) if not env.get(k)]
        if missing:
            raise RuntimeError(f"not run by `trtforge train`: {', '.join(missing)} not set")
        names = ("x_train", "y_train", "x_val", "y_val")
        arrays: dict[str, np.ndarray | None] = dict.fromkeys(names)
        if env.get(DATA_ENV):  # no dataset in the spec: the code brings its own data
            with np.load(env[DATA_ENV]) as data:
                arrays = {k: data[k] for k in names}
        spec = json.loads(Path(env[SPEC_ENV]).read_text())
        return cls(
            output_dir=Path(env[OUTPUT_ENV]),
            spec=spec,
            workdir=Path(env.get("TRTFORGE_WORKDIR") or Path.cwd()),
            **arrays,
        )


@dataclass(frozen=True)
class Workspace:
    """The folders of one run: code (the working folder), output, and the data/spec files."""

    root: Path

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def data(self) -> Path:
        return self.root / "data.npz"

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"


def prepare(
    ws: Workspace,
    custom: CustomTraining,
    code_source: Path | None,
    splits: Any | None,
    model_spec: dict[str, Any],
) -> Path:
    """Fill the workspace (the data file only with a dataset); returns the folder the code runs in."""
    ws.output.mkdir(parents=True)
    if splits is not None:
        np.savez(
            ws.data, x_train=splits.x_train, y_train=splits.y_train, x_val=splits.x_val, y_val=splits.y_val
        )
    ws.spec.write_text(json.dumps(model_spec, indent=1) + "\n")
    if code_source is None:
        return Path.cwd()
    if code_source.is_dir():
        shutil.copytree(code_source, ws.code)
    elif code_source.is_file():
        ws.code.mkdir()
        shutil.copy2(code_source, ws.code / code_source.name)
    else:
        raise custom_error(
            "notStarted", f"spec.model.train.custom.code {custom.code}: not found ({code_source})"
        )
    return ws.code


def environment(
    ws: Workspace, custom: CustomTraining, cwd: Path, model_spec: dict[str, Any]
) -> dict[str, str]:
    train = model_spec.get("train") or {}
    env = dict(os.environ)
    env.update(custom.env)
    env.update(
        {
            OUTPUT_ENV: str(ws.output),
            DATA_ENV: str(ws.data) if ws.data.is_file() else "",
            SPEC_ENV: str(ws.spec),
            "TRTFORGE_WORKDIR": str(cwd),
            "TRTFORGE_TASK": str(model_spec.get("task", "classification")),
            "TRTFORGE_EPOCHS": str(train.get("epochs", 10)),
            "TRTFORGE_BATCH_SIZE": str(train.get("batchSize", 32)),
            "TRTFORGE_SEED": str(train.get("seed", 42)),
            "PYTHONPATH": os.pathsep.join(p for p in (str(cwd), env.get("PYTHONPATH", "")) if p),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def command_of(custom: CustomTraining) -> list[str]:
    if custom.command is not None:
        return list(custom.command)
    return [sys.executable, "-m", "trtforge_runtime.train.custom", str(custom.entry_point)]


def code_location(uri: str | None, manifest_dir: Path, work: Path) -> Path | None:
    """The local file or folder of `custom.code`: relative to the manifest, file://, pvc:// (under
    $TRTFORGE_PVC_ROOT), or s3:// and other fsspec URIs (downloaded into `work`)."""
    if uri is None:
        return None
    from trtforge_runtime import remote
    from trtforge_runtime.train.datasets import DatasetSettings, local_path

    if remote.is_remote(uri) and not uri.startswith("pvc://"):
        dest = work / "fetched-code"
        dest.mkdir(parents=True)
        folder = remote.RemoteFolder.open(uri)
        files = folder.files()
        if files:
            folder.download(files, dest)
            return dest
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        try:
            folder.fs.get(folder.root, str(dest / name))
        except (OSError, ValueError) as exc:
            raise custom_error(
                "notStarted", f"spec.model.train.custom.code {uri}: cannot fetch: {exc}"
            ) from None
        return dest / name
    try:
        path = local_path(uri, DatasetSettings.from_env())
    except Exception as exc:
        raise custom_error("notStarted", f"spec.model.train.custom.code {uri}: {exc}") from None
    assert path is not None
    return path if path.is_absolute() else (manifest_dir / path).resolve()


def tree_digest(path: Path) -> str:
    """sha256 of a code file, or of a folder's files (relative names and contents, in name order)."""
    import hashlib

    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if "__pycache__" in f.parts:
            continue
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()


def local_code_digest(uri: str, manifest_dir: Path) -> str | None:
    """tree_digest of `custom.code` when it is local (a path, file://, pvc://); None for s3:// and the
    like, and when it is missing (such code always counts as changed)."""
    from trtforge_runtime import remote
    from trtforge_runtime.train.datasets import DatasetSettings, local_path

    if remote.is_remote(uri) and not uri.startswith("pvc://"):
        return None
    try:
        path = local_path(uri, DatasetSettings.from_env())
    except Exception:
        return None
    if path is None:
        return None
    path = path if path.is_absolute() else (manifest_dir / path).resolve()
    return tree_digest(path) if path.exists() else None


# ---------------------------------------------------------------------------------------------- run


def run_code(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> None:
    """Run the user's code in its own process group; stderr is passed through and its tail kept."""
    where = f"custom training code {' '.join(cmd)!r}"
    memory = child.MemoryCgroup.read()  # its OOM-kill count before the run (a killed run compares)
    try:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as exc:
        raise custom_error("notStarted", f"{where} cannot be started: {exc.strerror or exc}") from None
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
    pump = threading.Thread(target=_pump, args=(proc, tail), daemon=True)
    pump.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        pump.join(timeout=5)
        raise custom_error(
            "timedOut",
            f"{where} did not finish within spec.model.train.custom.timeoutSeconds ({timeout:g} s) and was "
            "stopped",
            list(tail),
        ) from None
    except BaseException:  # interrupted (SIGTERM of the Job, Ctrl-C): never leave the code running
        _stop(proc)
        raise
    pump.join(timeout=5)
    if code != 0:
        child.raise_if_killed(where, code, memory, list(tail))  # SIGKILL (OOM?), SIGTERM: retried
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with status {code}"
        raise custom_error("exited", f"{where} {how}; no model was taken", list(tail))


def _signal_name(number: int) -> str:
    """`signal 9 (SIGKILL)`: the number as the exit status shows it, and the name people know."""
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


def _pump(proc: subprocess.Popen[bytes], tail: collections.deque[str]) -> None:
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        sys.stderr.write(line + "\n")
        if line.strip():
            tail.append(line)
    sys.stderr.flush()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the code's process group, SIGKILL it after a grace period."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ----------------------------------------------------------------------------------------- the model


@dataclass
class LoadedModel:
    """The user's model as trtforge exports it: a callable of a batch, names, and how to save it."""

    predict: Callable[..., Any]  # (x or {input: x}, training=False) -> outputs; what loop.predict calls
    serve: Any  # tf.function(*inputs) -> {output_name: y}, traced for `specs`
    specs: list[Any]  # one tf.TensorSpec per input (batch dimension None), in the order of `inputs`
    inputs: list[ModelInput]  # the served inputs: names, dtypes, shapes after the batch dimension
    output_name: str
    write_saved_model: Callable[[Path], None]
    kind: str  # "keras" or "savedmodel"
    keras_file: Path | None = None
    keepalive: Any = None  # the loaded SavedModel object: its variables live as long as it does
    held_out: HeldOut | None = None  # the code's own held-out rows (no dataset, or several inputs)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def input_name(self) -> str:
        return self.inputs[0].name


@dataclass
class _Raw:
    """What was loaded, before trtforge decides the served inputs: the model called by its own input
    names (`call` takes one array for a model of one input, else {own name: array})."""

    call: Callable[[Any], Any]
    inputs: list[ModelInput] | None  # the model's own inputs; None when the model does not say
    output: str | None  # the model's own output name, when it has a usable one
    write: Callable[[Path], None]
    keepalive: Any = None


def find_model(output: Path) -> tuple[str, Path]:
    """("savedmodel", folder) or ("keras", file) written by the code; a clear error otherwise."""
    files = sorted(p for p in output.rglob("*") if p.is_file())
    if not files:
        raise custom_error(
            "noModel",
            f"custom training code wrote nothing to ${OUTPUT_ENV}; it must write a SavedModel "
            "(saved_model.pb) or a .keras file there",
        )
    saved = sorted({p.parent for p in files if p.name == "saved_model.pb"})
    keras_files = [p for p in files if p.suffix == ".keras"]
    found = [("savedmodel", p) for p in saved] + [("keras", p) for p in keras_files]
    names = [str(p.relative_to(output)) or "." for _, p in found]
    if len(found) > 1:
        raise custom_error(
            "notAModel",
            f"custom training code wrote several models to ${OUTPUT_ENV} ({', '.join(names)}); keep one",
        )
    if not found:
        listing = ", ".join(str(p.relative_to(output)) for p in files[:10])
        raise custom_error(
            "noModel",
            f"custom training code wrote no model to ${OUTPUT_ENV}: found {listing} but no SavedModel "
            "(saved_model.pb) or .keras file",
        )
    return found[0]


def _name(wanted: str | None, own: str | None, default: str) -> str:
    if wanted:
        return wanted
    if own and NAME_OK.match(own):
        return own
    return default


def load(
    kind: str,
    path: Path,
    custom: CustomTraining,
    feature_shape: tuple[int, ...] | None,
    code_dir: Path,
    samples: heldout.Arrays | None = None,
    task: str = "classification",
) -> LoadedModel:
    """Load what the code wrote; `notAModel` when it does not load or does not fit the data.

    With a dataset (`feature_shape`, the shape of its rows) the model takes one float32 input and is
    checked on the dataset's test split later; without one the model's own inputs are served and
    `samples` (the code's samples.npz) are its held-out rows, checked against them (`badSamples`)."""
    import tensorflow as tf

    rel = path.name
    raw = _load_keras(path, custom, code_dir) if kind == "keras" else _load_saved_model(path)
    output_name = _name(custom.output_name, raw.output, "output")
    inputs, held = _served_inputs(raw, custom, feature_shape, samples, task, rel)
    own = [t.name for t in raw.inputs] if raw.inputs else [inputs[0].name]
    served = [t.name for t in inputs]
    specs = [tf.TensorSpec([None, *t.shape], tf.as_dtype(t.dtype), name=t.name) for t in inputs]

    def feed(x: Any) -> Any:
        if len(served) == 1:
            return x[served[0]] if isinstance(x, dict) else x
        return {o: x[s] for o, s in zip(own, served, strict=True)}

    def predict(x: Any, training: bool = False) -> Any:
        return raw.call(feed(x))

    @tf.function(input_signature=specs)
    def serve(*xs: Any) -> dict[str, Any]:
        return {output_name: raw.call(xs[0] if len(xs) == 1 else dict(zip(own, xs, strict=True)))}

    loaded = LoadedModel(
        predict=predict,
        serve=serve,
        specs=specs,
        inputs=inputs,
        output_name=output_name,
        write_saved_model=raw.write,
        kind=kind,
        keras_file=path if kind == "keras" else None,
        keepalive=raw.keepalive,
        held_out=held,
    )
    _check_runs(loaded, rel)
    return loaded


def _served_inputs(
    raw: _Raw,
    custom: CustomTraining,
    feature_shape: tuple[int, ...] | None,
    samples: heldout.Arrays | None,
    task: str,
    rel: str,
) -> tuple[list[ModelInput], HeldOut | None]:
    """The inputs trtforge serves, and the code's held-out rows checked against them (None when the
    dataset's test split is the held-out data)."""
    if feature_shape is not None:
        return _dataset_input(raw, custom, feature_shape, samples, rel), None
    inputs = _own_inputs(raw, custom, rel)
    if samples is None:
        raise samples_error(
            f"custom training code wrote no held-out rows: {_why_samples(inputs)}, it must write "
            f"$TRTFORGE_OUTPUT_DIR/{SAMPLES_FILE} with {_wanted_keys(inputs)} (Context.write_samples)"
        )
    return inputs, heldout.check(samples, inputs, task, f"{SAMPLES_FILE} written by the custom training code")


def _why_samples(inputs: list[ModelInput]) -> str:
    if len(inputs) > 1:
        return f"the model has {len(inputs)} inputs ({', '.join(t.name for t in inputs)})"
    return "spec.model.train.dataset is not set"


def _wanted_keys(inputs: list[ModelInput]) -> str:
    return ", ".join(f"x_test.{t.name}" for t in inputs) + " and y_test"


def _dataset_input(
    raw: _Raw, custom: CustomTraining, feature_shape: tuple[int, ...], samples: Any, rel: str
) -> list[ModelInput]:
    """The one float32 input the dataset's rows feed; a model of several inputs, or held-out rows of
    the code's own, contradict the dataset."""
    if raw.inputs is not None and len(raw.inputs) > 1:
        raise samples_error(
            f"the model in {rel} has {len(raw.inputs)} inputs ({', '.join(t.name for t in raw.inputs)}), "
            "but spec.model.train.dataset's rows feed a model of one input: drop the dataset and have the "
            f"code load its own data and write its held-out rows ($TRTFORGE_OUTPUT_DIR/{SAMPLES_FILE} with "
            f"{_wanted_keys(raw.inputs)}, Context.write_samples)"
        )
    if samples is not None:
        raise samples_error(
            f"custom training code wrote {SAMPLES_FILE}, but spec.model.train.dataset is set: the quality "
            "gate uses the dataset's held-back test split; drop the dataset to use the code's own held-out "
            f"rows, or stop writing {SAMPLES_FILE}"
        )
    own = raw.inputs[0].name if raw.inputs else None
    return [ModelInput(_name(custom.input_name, own, "input"), "float32", feature_shape)]


def _own_inputs(raw: _Raw, custom: CustomTraining, rel: str) -> list[ModelInput]:
    """The model's own inputs as served (inputName renames the only one), with supported dtypes."""
    if not raw.inputs:
        raise custom_error(
            "notAModel",
            f"the model in {rel} does not say what inputs it takes (a subclassed Keras model never "
            "called?); build it from keras.Input layers, or export a SavedModel with a serving signature",
        )
    heldout.check_model_inputs(raw.inputs, rel)
    if len(raw.inputs) == 1:
        t = raw.inputs[0]
        return [ModelInput(_name(custom.input_name, t.name, "input"), t.dtype, t.shape)]
    if custom.input_name:
        raise custom_error(
            "notAModel",
            f"spec.model.train.custom.inputName renames the only input, but the model in {rel} has "
            f"{len(raw.inputs)} ({', '.join(t.name for t in raw.inputs)}); they are served under their own "
            "names",
        )
    bad = [t.name for t in raw.inputs if not NAME_OK.match(t.name)]
    if bad or len({t.name for t in raw.inputs}) != len(raw.inputs):
        raise custom_error(
            "notAModel",
            f"the model in {rel} has inputs {[t.name for t in raw.inputs]}; each needs a distinct name of "
            "letters, digits and _ (not starting with a digit) to be served, e.g. keras.Input(..., "
            "name='image')",
        )
    return list(raw.inputs)


def _load_keras(path: Path, custom: CustomTraining, code_dir: Path) -> _Raw:
    model = _keras_model(path, custom, code_dir)
    outputs = list(getattr(model, "outputs", None) or [])
    if len(outputs) > 1:
        raise custom_error(
            "notAModel",
            f"the model in {path.name} has {len(outputs)} outputs; custom training code models have one "
            "output (import a model of several outputs through spec.model.source)",
        )

    def write_keras(target: Path) -> None:
        model.export(str(target), format="tf_saved_model", verbose=False)

    return _Raw(
        call=lambda x: model(x, training=False),
        inputs=_keras_inputs(model),
        output=_keras_output_name(model),
        write=write_keras,
    )


def _keras_model(path: Path, custom: CustomTraining, code_dir: Path) -> Any:
    import keras

    if custom.entry_point:
        # its module registers the custom layers (keras.saving.register_keras_serializable); it is found
        # where the code found it: the working folder, then custom.env's PYTHONPATH
        extra = [str(code_dir), *(p for p in custom.env.get("PYTHONPATH", "").split(os.pathsep) if p)]
        sys.path[:0] = extra
        try:
            importlib.import_module(custom.entry_point.split(":")[0])
        except Exception as exc:
            raise custom_error(
                "notAModel", f"cannot import {custom.entry_point} to load {path.name}: {exc}"
            ) from None
        finally:
            del sys.path[: len(extra)]
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # zip errors, unknown classes, bad configs: Keras raises many kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = (
            " (a custom class must be registered with @keras.saving.register_keras_serializable in the "
            "entryPoint's module, or write a SavedModel with model.export(DIR))"
            if "custom" in first.lower() or "could not" in first.lower() or "unknown" in first.lower()
            else ""
        )
        raise custom_error(
            "notAModel",
            f"{path.name} written by the custom training code is not a Keras model: {first}{hint}",
        ) from None


def _keras_inputs(model: Any) -> list[ModelInput] | None:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return [
        ModelInput(
            str(getattr(t, "name", "") or f"input_{i}"),
            str(getattr(t, "dtype", "float32")),
            tuple(None if d is None else int(d) for d in tuple(t.shape)[1:]),
        )
        for i, t in enumerate(inputs)
    ]


def _keras_output_name(model: Any) -> str | None:
    names = getattr(model, "output_names", None)
    return str(names[0]) if names and len(names) == 1 else None


def _load_saved_model(path: Path) -> _Raw:
    import tensorflow as tf

    try:
        obj = tf.saved_model.load(str(path))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise custom_error("notAModel", f"SavedModel {path.name} cannot be loaded: {first}") from None
    signatures = dict(getattr(obj, "signatures", {}) or {})
    if "serving_default" not in signatures:
        raise custom_error(
            "notAModel",
            f"SavedModel {path.name} has no serving_default signature (signatures: {sorted(signatures)})",
        )
    sig = signatures["serving_default"]
    # a signature's inputs are keyword arguments with no order of their own: the loaded dict's order
    # varies with the process (PYTHONHASHSEED), so they are taken in name order, as tf.nest flattens them
    in_specs = dict(sorted(sig.structured_input_signature[1].items()))
    outs = dict(sig.structured_outputs)
    if not in_specs or len(outs) != 1:
        raise custom_error(
            "notAModel",
            f"SavedModel {path.name} has inputs {sorted(in_specs)} and outputs {sorted(outs)}; "
            "custom training code models have at least one input and exactly one output",
        )
    (sig_out,) = outs
    inputs = [
        ModelInput(name, spec.dtype.name, tuple(None if d is None else int(d) for d in spec.shape[1:]))
        for name, spec in in_specs.items()
    ]
    dtypes = {name: spec.dtype for name, spec in in_specs.items()}
    first_name = inputs[0].name

    def call(x: Any) -> Any:
        feeds = x if isinstance(x, dict) else {first_name: x}
        return sig(**{n: tf.cast(v, dtypes[n]) for n, v in feeds.items()})[sig_out]

    def write(target: Path) -> None:
        # the code's held-out rows may sit next to saved_model.pb: they are published as samples.npz
        shutil.copytree(path, target, ignore=lambda d, _: [SAMPLES_FILE] if Path(d) == path else [])

    return _Raw(call=call, inputs=inputs, output=sig_out, write=write, keepalive=obj)


def _check_runs(model: LoadedModel, what: str) -> None:
    """Two rows through the model (zeros of the dataset's shape, or the first held-out rows): it must
    accept them and answer (batch, ...)."""
    if model.held_out is None:
        shape = list(model.inputs[0].shape)
        x: Any = np.zeros((2, *shape), np.float32)
        rows = f"the dataset's rows of shape {shape}"
    else:
        x = {n: a[:2] for n, a in model.held_out.x_test.items()}
        rows = (
            "its held-out rows ("
            + ", ".join(f"x_test.{n} {list(a.shape[1:])} {a.dtype}" for n, a in x.items())
            + ")"
        )
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    try:
        out = np.asarray(model.predict(x, training=False))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise custom_error("notAModel", f"the model in {what} does not accept {rows}: {first}") from None
    if out.ndim < 1 or out.shape[0] != n:
        raise custom_error("notAModel", f"the model in {what} answers shape {list(out.shape)} for {n} rows")


# -------------------------------------------------------------------------------------------- driver


def train(
    md: ModelDeployment,
    manifest_dir: Path,
    workdir: Path,
    splits: Any | None,
    *,
    is_chief: bool = True,
    code_source: Path | None = None,
) -> tuple[LoadedModel | None, float]:
    """Run the custom code on `splits` (None: no dataset, the code brings its own data and held-out
    rows); (its model, None on a non-chief worker; seconds it ran)."""
    train_spec = md.spec.model.train
    assert train_spec is not None and train_spec.custom is not None
    custom = train_spec.custom
    model_spec = md.spec.model.model_dump(by_alias=True, mode="json", exclude_none=True)
    ws = Workspace(workdir)
    cwd = prepare(ws, custom, code_source, splits, model_spec)
    cmd = command_of(custom)
    log.info("running custom training code %s in %s (timeout %d s)", cmd, cwd, custom.timeout_seconds)
    start = time.perf_counter()
    run_code(cmd, cwd, environment(ws, custom, cwd, model_spec), float(custom.timeout_seconds))
    seconds = time.perf_counter() - start
    if not is_chief:
        return None, seconds
    kind, path = find_model(ws.output)
    log.info("custom training code wrote a %s: %s", kind, path.relative_to(ws.output))
    samples = heldout.read(ws.output / SAMPLES_FILE) if (ws.output / SAMPLES_FILE).is_file() else None
    shape = None if splits is None else tuple(int(d) for d in splits.x_train.shape[1:])
    return load(kind, path, custom, shape, cwd, samples, str(md.spec.model.task)), seconds


# ------------------------------------------------------------------------- python -m ... module:function


def main(argv: list[str]) -> int:
    """Run an entry point `module:function` with the Context of the environment."""
    if len(argv) != 1 or ":" not in argv[0]:
        print("usage: python -m trtforge_runtime.train.custom module:function", file=sys.stderr)
        return 2
    module_name, func_name = argv[0].split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"entryPoint {argv[0]}: cannot import {module_name!r}: {exc}", file=sys.stderr)
        return 2
    func = getattr(module, func_name, None)
    if func is None:
        print(f"entryPoint {argv[0]}: {module_name} has no function {func_name!r}", file=sys.stderr)
        return 2
    if not callable(func):
        kind = type(func).__name__
        print(f"entryPoint {argv[0]}: {module_name}.{func_name} is a {kind}, not a function", file=sys.stderr)
        return 2
    ctx = Context.from_env()
    result = func(ctx)
    if result is not None:
        save = getattr(result, "save", None)
        if not callable(save):
            print(
                f"entryPoint {argv[0]} returned a {type(result).__name__}, not a Keras model; return "
                f"the model, or None after writing it to ${OUTPUT_ENV}",
                file=sys.stderr,
            )
            return 2
        save(str(ctx.output_dir / KERAS_FILE))
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses in the tests
    sys.exit(main(sys.argv[1:]))
