"""`trtforge train -f FILE -o DIR`: train the manifest's model and publish the model folder atomically.

Everything goes into a temporary sibling of DIR that is renamed into place only when complete, so an
interrupted run (Ctrl-C, or SIGTERM from Kubernetes) leaves nothing half-written and an existing model
is never replaced without `--overwrite`. Below `minAccuracy` the model is not published: DIR then holds
only `metrics.json` (`"passed": false`); if DIR already held a model (with `--overwrite`), that model is
kept and the failing metrics go to `DIR/metrics.rejected.json`. A later run may replace a folder that
holds only a failed report without `--overwrite`. The outcome is reported to the operator through the
container termination message in every case.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from trtforge_runtime import __version__, tasks
from trtforge_runtime.artifacts import (
    atomic_output_dir,
    read_json,
    sha256_file,
    utc_now,
    versions,
    write_json,
    write_termination_message,
)
from trtforge_runtime.errors import ManifestError, QualityGateError, TrainingError, TrtforgeError
from trtforge_runtime.remote import is_remote
from trtforge_runtime.spec.load import load_manifest
from trtforge_runtime.spec.model import ModelDeployment, Train
from trtforge_runtime.train.datasets import DatasetSettings
from trtforge_runtime.train.strategy import StrategyPlan, plan_strategy

log = logging.getLogger(__name__)

MODEL_FORMAT = "trtforge.model/v1"
CALIBRATION_ROWS = 1024
REJECTED_METRICS = "metrics.rejected.json"
# An export that disagrees more than this with TensorFlow is a broken conversion, not a model to ship.
PARITY_MAX_ABS_DIFF = 1e-3
PARITY_MIN_AGREEMENT = 0.99


@dataclass(frozen=True)
class TrainOptions:
    """The train subcommand's flags."""

    file: Path
    output: Path
    overwrite: bool = False
    progress: str = "auto"
    uri: str | None = None  # a remote output (s3://...): `output` is then unused

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainOptions:
        uri = args.output if is_remote(args.output) else None
        return cls(
            file=Path(args.file),
            output=Path() if uri else Path(args.output),
            overwrite=bool(getattr(args, "overwrite", False)),
            progress=str(getattr(args, "progress", "auto")),
            uri=uri,
        )


@dataclass
class TrainOutcome:
    """What the command reports: on stdout, and to the operator through the termination message."""

    name: str
    output: Path | str
    accuracy: float
    min_accuracy: float
    digest: str
    epochs: int
    seconds: float
    parity: dict[str, Any]
    passed: bool
    published: bool
    metrics: dict[str, Any]

    @property
    def quality(self) -> str:
        """The quality gate's verdict in words, e.g. `test R² 0.51 >= minR2 0.4: passed`."""
        gate = self.metrics.get("gate") or {}
        return str(gate.get("why") or f"test accuracy {self.accuracy:.4f}")

    def summary(self) -> dict[str, Any]:
        gate = self.metrics.get("gate") or {}
        return {
            "ok": True,
            "stage": "train",
            "name": self.name,
            "task": self.metrics.get("task", "classification"),
            "accuracy": self.accuracy,
            "minAccuracy": self.min_accuracy,
            "gate": gate.get("why"),
            "digest": self.digest,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 3),
            "onnxParity": self.parity,
            "published": self.published,
        }


class _Rejected(Exception):
    """Internal: abandon the temporary folder because the gate failed and DIR holds a model to keep."""

    def __init__(self, metrics: dict[str, Any]) -> None:
        super().__init__("quality gate failed")
        self.metrics = metrics


def run(args: argparse.Namespace) -> int:
    """Entry point of `trtforge train` (see cli.py)."""
    options = TrainOptions.from_args(args)
    with _terminate_on_sigterm():
        try:
            outcome = train_to_folder(options) if options.uri is None else train_to_uri(options, options.uri)
        except TrtforgeError as exc:
            report = {"ok": False, "stage": "train", "reason": type(exc).__name__, "error": str(exc)}
            report.update(getattr(exc, "summary", {}))
            write_termination_message(report)
            raise
        except (KeyboardInterrupt, SystemExit):
            write_termination_message(
                {"ok": False, "stage": "train", "reason": "Interrupted", "error": "interrupted"}
            )
            raise
        except Exception as exc:
            write_termination_message(
                {
                    "ok": False,
                    "stage": "train",
                    "reason": type(exc).__name__,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            raise
    write_termination_message(outcome.summary())
    if outcome.published:
        print(
            f"trained {outcome.name}: {outcome.quality}; "
            f"{outcome.epochs} epochs in {outcome.seconds:.1f}s; {outcome.digest} -> {outcome.output}"
        )
    else:
        print(f"trained {outcome.name} as a non-chief worker: {outcome.quality}; nothing written")
    return 0


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM (a Job's pod being stopped) into SystemExit so temporary folders are removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_spec_of(md: ModelDeployment, source: str) -> Train:
    train = md.spec.model.train
    if train is None:
        raise ManifestError(
            f"{source}: spec.model.train is not set (this ModelDeployment imports spec.model.source; "
            "`trtforge convert` reads it directly, there is nothing to train)"
        )
    return train


def holds_failed_report(target: Path) -> bool:
    """True when `target` holds nothing but the metrics.json of a run that failed its quality gate."""
    if not target.is_dir() or sorted(p.name for p in target.iterdir()) != ["metrics.json"]:
        return False
    try:
        return read_json(target / "metrics.json", "metrics").get("passed") is False
    except TrtforgeError:
        return False


def train_to_folder(options: TrainOptions) -> TrainOutcome:
    """Load the manifest, train, export and publish; raise QualityGateError below minAccuracy."""
    from trtforge_runtime.train import trainer

    trainer.quiet_tensorflow()
    from trtforge_runtime.train.strategy import visible_gpus

    md = load_manifest(options.file)
    spec = train_spec_of(md, str(options.file))
    target = options.output.resolve()
    # TF_CONFIG alone says whether this process publishes: decide (and refuse a taken folder) before
    # TensorFlow is imported.
    is_chief = plan_strategy(os.environ, [], spec.workers).is_chief

    scratch: Path | None = None
    if not is_chief:
        # Workers other than the chief run every step (the collectives need them) but publish nothing.
        scratch = Path(tempfile.mkdtemp(prefix="trtforge-worker-"))
        target = scratch / "model"
    keep_existing = target.is_dir() and (target / "model.onnx").exists()
    overwrite = options.overwrite or holds_failed_report(target)
    try:
        with atomic_output_dir(target, overwrite=overwrite, marker="model.onnx") as tmp:
            plan = plan_strategy(os.environ, visible_gpus(), spec.workers)
            outcome = _train_into(tmp, md, spec, options, plan, keep_existing=keep_existing)
    except _Rejected as rejected:
        write_json(target / REJECTED_METRICS, rejected.metrics)
        raise _gate_error(rejected.metrics, target / REJECTED_METRICS, kept=True) from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    outcome.output = target
    outcome.published = is_chief
    if not outcome.passed:
        where = str(target / "metrics.json") if is_chief else "not written by a non-chief worker"
        raise _gate_error(outcome.metrics, where, kept=False)
    return outcome


def train_to_uri(options: TrainOptions, uri: str) -> TrainOutcome:
    """Train into a local staging folder as for a path, then publish it at `uri` (manifest.json last).

    The remote folder is checked first like a local one (refused unless empty, a failed report, or
    --overwrite). Below minAccuracy a remote model is kept and the metrics go to metrics.rejected.json.
    """
    from trtforge_runtime import remote

    folder = remote.RemoteFolder.open(uri)
    md = load_manifest(options.file)
    is_chief = plan_strategy(os.environ, [], train_spec_of(md, str(options.file)).workers).is_chief
    existing = folder.files() if is_chief else []
    holds_model = remote.MODEL_MARKER in existing
    if is_chief:
        failed_report = (
            existing == ["metrics.json"] and folder.read_json("metrics.json").get("passed") is False
        )
        remote.check_output(folder, remote.MODEL_MARKER, overwrite=options.overwrite or failed_report)
    with remote.staging("trtforge-train-") as local:
        try:
            outcome = train_to_folder(replace(options, output=local, uri=None))
        except QualityGateError as exc:
            if is_chief and (local / "metrics.json").is_file():
                if holds_model:
                    folder.put(local / "metrics.json", REJECTED_METRICS)
                else:
                    remote.publish(local, folder, remote.MODEL_MARKER)
            where = f"{uri}/{REJECTED_METRICS if holds_model else 'metrics.json'}"
            msg = str(exc).replace(str(local.resolve() / "metrics.json"), where)
            if holds_model:
                msg = msg.replace("no model was published", "the existing model at the URI was kept")
            err = QualityGateError(msg)
            err.summary = getattr(exc, "summary", {})  # type: ignore[attr-defined]
            raise err from None
        if is_chief:
            remote.publish(local, folder, remote.MODEL_MARKER)
    outcome.output = uri
    return outcome


def _gate_error(metrics: dict[str, Any], where: Path | str, *, kept: bool) -> QualityGateError:
    note = "the existing model in the output folder was kept" if kept else "no model was published"
    checks = metrics["gate"]["checks"]
    failed = [c for c in checks if not c["passed"]] or checks
    parts = []
    for c in failed:
        how = "below the required" if c["value"] < (c["limit"] or 0) else "above the allowed"
        parts.append(f"{c['metric']} {c['value']:.4f} is {how} {c['setting']} {c['limit']}")
    err = QualityGateError(f"{'; '.join(parts)}; {note} (metrics: {where})")
    first = failed[0]
    err.summary = {  # type: ignore[attr-defined]
        "accuracy": first["value"],
        "minAccuracy": metrics.get("minAccuracy"),
        "metric": first["metric"],
        "limit": first["limit"],
    }
    return err


@dataclass
class _Trained:
    """A trained model, declarative or custom, as the rest of the stage needs it."""

    predict: Any  # what loop.predict calls: a Keras model or a function of a batch
    x_test: np.ndarray | dict[str, np.ndarray]  # held-out rows: one float array, or one per input name
    y_test: np.ndarray
    x_calib: np.ndarray | dict[str, np.ndarray] | None  # calibration rows for int8, in the same form
    epochs: int
    seconds: float
    input_names: list[str]
    output_name: str
    write_saved_model: Callable[[Path], None]
    write_onnx: Callable[[Path], None]
    scores: dict[str, dict[str, float]]
    extra_files: dict[str, Path]  # name in the model folder -> file to copy there (e.g. model.keras)
    extra_manifest: dict[str, Any] = field(default_factory=dict)  # e.g. codeDigest of custom code


def _dataset_settings(options: TrainOptions) -> DatasetSettings:
    """Relative dataset paths are relative to the manifest's folder."""
    return DatasetSettings.from_env(base_dir=options.file.resolve().parent)


def _declarative(md: ModelDeployment, spec: Train, options: TrainOptions, plan: StrategyPlan) -> _Trained:
    from trtforge_runtime.train import export, trainer

    result = trainer.train(
        spec,
        progress=options.progress,
        plan=plan,
        task=str(md.spec.model.task),
        dataset_settings=_dataset_settings(options),
    )
    arch = spec.architecture
    assert arch is not None
    return _Trained(
        predict=result.model,
        x_test=result.splits.x_test,
        y_test=result.splits.y_test,
        x_calib=result.splits.x_train[:CALIBRATION_ROWS],
        epochs=result.epochs,
        seconds=result.seconds,
        input_names=[arch.input_name],
        output_name=arch.output_name,
        write_saved_model=lambda path: export.export_saved_model(result.model, path),
        write_onnx=lambda path: export.export_onnx(
            result.model, path, input_name=arch.input_name, output_name=arch.output_name
        ),
        scores=result.scores,
        extra_files={},
    )


def _custom(
    md: ModelDeployment, spec: Train, options: TrainOptions, plan: StrategyPlan, work: Path
) -> _Trained | None:
    """Run spec.custom; None on a non-chief worker (its code ran; it publishes nothing).

    With a dataset the model is scored on its train, validation and test splits; without one (or for a
    model of several inputs) on the held-out rows the code wrote (custom.LoadedModel.held_out)."""
    from trtforge_runtime.train import custom, export
    from trtforge_runtime.train.datasets import load_dataset

    task = str(md.spec.model.task)
    splits = (
        load_dataset(spec.dataset, spec.seed, _dataset_settings(options), task)
        if spec.dataset is not None
        else None
    )
    code_source = custom.code_location(spec.custom.code, options.file.parent, work) if spec.custom else None
    model, seconds = custom.train(
        md, options.file.parent, work / "run", splits, is_chief=plan.is_chief, code_source=code_source
    )
    if model is None:
        return None
    x_test: np.ndarray | dict[str, np.ndarray]
    x_calib: np.ndarray | dict[str, np.ndarray] | None
    if model.held_out is not None:
        held = model.held_out
        x_test, y_test, x_calib = held.x_test, held.y_test, held.x_calib
        evaluated: list[tuple[str, Any, np.ndarray]] = [("test", x_test, y_test)]
    else:
        assert splits is not None
        x_test, y_test, x_calib = splits.x_test, splits.y_test, splits.x_train[:CALIBRATION_ROWS]
        evaluated = [
            ("train", splits.x_train, splits.y_train),
            ("validation", splits.x_val, splits.y_val),
            ("test", splits.x_test, splits.y_test),
        ]
    return _Trained(
        predict=model.predict,
        x_test=x_test,
        y_test=y_test,
        x_calib=x_calib,
        epochs=spec.epochs,
        seconds=seconds,
        input_names=model.input_names,
        output_name=model.output_name,
        write_saved_model=model.write_saved_model,
        write_onnx=lambda path: export.export_function_onnx(
            model.serve, model.specs, path, input_names=model.input_names, output_names=[model.output_name]
        ),
        scores=_scores(model.predict, evaluated, task, md.spec.model.loss),
        extra_files={custom.KERAS_FILE: model.keras_file} if model.keras_file is not None else {},
        # what `trtforge local` compares to retrain when the code changes
        extra_manifest={"codeDigest": custom.tree_digest(code_source)} if code_source is not None else {},
    )


def _scores(
    predict: Any, evaluated: list[tuple[str, Any, np.ndarray]], task: str, loss: str
) -> dict[str, dict[str, float]]:
    """The task's metrics and loss of the model on each named set of rows."""
    from trtforge_runtime.train import architecture, loop

    width = max(tasks.output_width(task, y) for _, _, y in evaluated)
    scores: dict[str, dict[str, float]] = {}
    for name, x, y in evaluated:
        outputs = loop.predict(predict, x)
        if task == tasks.CLASSIFICATION:
            width = max(width, outputs.reshape(len(outputs), -1).shape[1])
        result = loop.score_outputs(outputs, y, architecture.targets(y, loss, width, task), loss, task)
        scores[name] = {k: round(v, 6) for k, v in result.items()}
    return scores


def _train_into(
    tmp: Path,
    md: ModelDeployment,
    spec: Train,
    options: TrainOptions,
    plan: StrategyPlan,
    *,
    keep_existing: bool,
) -> TrainOutcome:
    from trtforge_runtime.train import export

    task = str(md.spec.model.task)
    if spec.custom is not None:
        with tempfile.TemporaryDirectory(prefix="trtforge-custom-") as work:
            trained = _custom(md, spec, options, plan, Path(work))
            if trained is None:  # a non-chief worker of custom code
                return _worker_outcome(md, spec)
            return _publish(tmp, md, spec, trained, task, keep_existing=keep_existing, export=export)
    return _publish(
        tmp, md, spec, _declarative(md, spec, options, plan), task, keep_existing=keep_existing, export=export
    )


def _worker_outcome(md: ModelDeployment, spec: Train) -> TrainOutcome:
    return TrainOutcome(
        name=md.metadata.name,
        output="",
        accuracy=0.0,
        min_accuracy=spec.min_accuracy,
        digest="",
        epochs=spec.epochs,
        seconds=0.0,
        parity={},
        passed=True,
        published=False,
        # the chief evaluates and gates the model; a worker only reports that its share of the code ran
        metrics={"gate": {"passed": True, "why": "the custom training code finished"}},
    )


def _publish(
    tmp: Path,
    md: ModelDeployment,
    spec: Train,
    trained: _Trained,
    task: str,
    *,
    keep_existing: bool,
    export: Any,
) -> TrainOutcome:
    """Gate, export, check parity and write the model folder's files into `tmp`."""
    verdicts = tasks.training_verdicts(task, trained.scores["test"], spec)
    gate = tasks.combined(verdicts)
    metrics: dict[str, Any] = {
        "task": task,
        **trained.scores,
        "epochs": trained.epochs,
        "seconds": round(trained.seconds, 3),
        "onnxParity": None,
        "minAccuracy": spec.min_accuracy,
        "gate": gate,
        "passed": gate["passed"],
    }
    headline = trained.scores["test"][tasks.headline(task)]
    outcome = TrainOutcome(
        name=md.metadata.name,
        output=tmp,
        accuracy=headline,
        min_accuracy=spec.min_accuracy,
        digest="",
        epochs=trained.epochs,
        seconds=trained.seconds,
        parity={},
        passed=bool(gate["passed"]),
        published=False,
        metrics=metrics,
    )
    if not gate["passed"]:
        log.error("quality gate failed: %s", gate["why"])
        if keep_existing:
            raise _Rejected(metrics)
        write_json(tmp / "metrics.json", metrics)
        _make_readable(tmp)
        return outcome
    log.info("quality gate: %s", gate["why"])
    outcome.digest, outcome.parity = _write_model(tmp, md, trained, task, metrics, export)
    _make_readable(tmp)
    log.info("model %s: %s", outcome.digest, ", ".join(sorted(p.name for p in tmp.iterdir())))
    return outcome


def _write_model(
    tmp: Path, md: ModelDeployment, trained: _Trained, task: str, metrics: dict[str, Any], export: Any
) -> tuple[str, dict[str, Any]]:
    """SavedModel, ONNX (checked against TensorFlow), samples, metrics and manifest; (digest, parity)."""
    trained.write_saved_model(tmp / "saved_model")
    for name, source in trained.extra_files.items():
        shutil.copy2(source, tmp / name)
    onnx_path = tmp / "model.onnx"
    trained.write_onnx(onnx_path)
    parity = export.onnx_parity(
        trained.predict, onnx_path, trained.x_test, input_name=trained.input_names[0], task=task
    )
    metrics["onnxParity"] = parity.as_json()
    if not parity.acceptable(PARITY_MAX_ABS_DIFF, PARITY_MIN_AGREEMENT):
        raise TrainingError(
            f"the ONNX export does not reproduce the TensorFlow model on {parity.rows} test rows "
            f"(max abs diff {parity.max_abs_diff:.3g}, agreement {parity.argmax_agreement:.4f})"
        )
    np.savez(tmp / "samples.npz", **samples_arrays(trained, task))  # type: ignore[arg-type]
    digest = sha256_file(onnx_path)
    inputs, outputs = export.tensor_descriptions(onnx_path)
    write_json(tmp / "metrics.json", metrics)
    write_json(
        tmp / "manifest.json",
        {
            "format": MODEL_FORMAT,
            "digest": digest,
            "task": task,
            "inputs": inputs,
            "outputs": outputs,
            "versions": library_versions(),
            "createdAt": utc_now(),
            "name": md.metadata.name,
            "spec": md.spec.model_dump(by_alias=True, mode="json", exclude_none=True),
            **trained.extra_manifest,
        },
    )
    return digest, parity.as_json()


def samples_arrays(trained: _Trained, task: str) -> dict[str, np.ndarray]:
    """samples.npz: `x_test`/`x_calib` as float32 for a dataset's rows, or `x_test.<input>` /
    `x_calib.<input>` in each input's own dtype for held-out rows per input (what convert reads)."""
    label_dtype = np.float32 if task == tasks.REGRESSION else np.int64
    out = {"y_test": trained.y_test.astype(label_dtype)}
    for key, x in (("x_test", trained.x_test), ("x_calib", trained.x_calib)):
        if isinstance(x, dict):
            out.update({f"{key}.{name}": a for name, a in x.items()})
        elif x is not None:
            out[key] = x.astype(np.float32)
    return out


def _make_readable(folder: Path) -> None:
    """The temporary folder is created 0700; give the published one the permissions of the umask."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def library_versions() -> dict[str, str]:
    import tensorflow as tf

    out = versions(["keras", "onnx", "tf2onnx", "onnxruntime", "numpy"])
    out["trtforge"] = __version__
    out["tensorflow"] = str(tf.__version__)
    return dict(sorted(out.items()))


def _main() -> None:  # pragma: no cover - convenience for `python -m trtforge_runtime.train.command`
    from trtforge_runtime.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))


if __name__ == "__main__":  # pragma: no cover
    _main()
