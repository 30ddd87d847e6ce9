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
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from trtforge_runtime import __version__
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

    def summary(self) -> dict[str, Any]:
        return {
            "ok": True,
            "stage": "train",
            "name": self.name,
            "accuracy": self.accuracy,
            "minAccuracy": self.min_accuracy,
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
            f"trained {outcome.name}: test accuracy {outcome.accuracy:.4f} "
            f"(minAccuracy {outcome.min_accuracy}), "
            f"{outcome.epochs} epochs in {outcome.seconds:.1f}s; {outcome.digest} -> {outcome.output}"
        )
    else:
        print(
            f"trained {outcome.name} as a non-chief worker: test accuracy {outcome.accuracy:.4f}; "
            "nothing written"
        )
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
    measured, required = metrics["test"]["accuracy"], metrics["minAccuracy"]
    note = "the existing model in the output folder was kept" if kept else "no model was published"
    err = QualityGateError(
        f"test accuracy {measured:.4f} is below the required spec.model.train.minAccuracy {required}; "
        f"{note} (metrics: {where})"
    )
    err.summary = {"accuracy": measured, "minAccuracy": required}  # type: ignore[attr-defined]
    return err


def _train_into(
    tmp: Path,
    md: ModelDeployment,
    spec: Train,
    options: TrainOptions,
    plan: StrategyPlan,
    *,
    keep_existing: bool,
) -> TrainOutcome:
    from trtforge_runtime.train import export, trainer

    result = trainer.train(spec, progress=options.progress, plan=plan)
    metrics: dict[str, Any] = {
        **result.scores,
        "epochs": result.epochs,
        "seconds": round(result.seconds, 3),
        "onnxParity": None,
        "minAccuracy": spec.min_accuracy,
        "passed": result.test_accuracy >= spec.min_accuracy,
    }
    outcome = TrainOutcome(
        name=md.metadata.name,
        output=tmp,
        accuracy=result.test_accuracy,
        min_accuracy=spec.min_accuracy,
        digest="",
        epochs=result.epochs,
        seconds=result.seconds,
        parity={},
        passed=bool(metrics["passed"]),
        published=False,
        metrics=metrics,
    )
    if not metrics["passed"]:
        log.error("test accuracy %.4f is below minAccuracy %s", result.test_accuracy, spec.min_accuracy)
        if keep_existing:
            raise _Rejected(metrics)
        write_json(tmp / "metrics.json", metrics)
        _make_readable(tmp)
        return outcome

    inputs_name, output_name = spec.architecture.input_name, spec.architecture.output_name
    export.export_saved_model(result.model, tmp / "saved_model")
    onnx_path = tmp / "model.onnx"
    export.export_onnx(result.model, onnx_path, input_name=inputs_name, output_name=output_name)
    parity = export.onnx_parity(result.model, onnx_path, result.splits.x_test, input_name=inputs_name)
    metrics["onnxParity"] = parity.as_json()
    if parity.max_abs_diff > PARITY_MAX_ABS_DIFF or parity.argmax_agreement < PARITY_MIN_AGREEMENT:
        raise TrainingError(
            f"the ONNX export does not reproduce the TensorFlow model on {parity.rows} test rows "
            f"(max abs diff {parity.max_abs_diff:.3g}, argmax agreement {parity.argmax_agreement:.4f})"
        )
    splits = result.splits
    np.savez(
        tmp / "samples.npz",
        x_test=splits.x_test.astype(np.float32),
        y_test=splits.y_test.astype(np.int64),
        x_calib=splits.x_train[:CALIBRATION_ROWS].astype(np.float32),
    )
    digest = sha256_file(onnx_path)
    inputs, outputs = export.tensor_descriptions(onnx_path)
    write_json(tmp / "metrics.json", metrics)
    write_json(
        tmp / "manifest.json",
        {
            "format": MODEL_FORMAT,
            "digest": digest,
            "inputs": inputs,
            "outputs": outputs,
            "versions": library_versions(),
            "createdAt": utc_now(),
            "name": md.metadata.name,
            "spec": md.spec.model_dump(by_alias=True, mode="json", exclude_none=True),
        },
    )
    outcome.digest = digest
    outcome.parity = parity.as_json()
    _make_readable(tmp)
    log.info("model %s: %s", digest, ", ".join(sorted(p.name for p in tmp.iterdir())))
    return outcome


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
