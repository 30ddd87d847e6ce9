"""Finding and validating the model to convert, and the data its gate and calibration run on.

The model is either a `trtforge train` output folder (model.onnx + manifest.json + samples.npz) or the
spec's `model.source`: an ONNX file, or a SavedModel converted to ONNX first with tf2onnx. Every ONNX file
is checked with onnx's checker before anything else touches it, so a corrupt or non-ONNX file is reported
as such (naming the file and the problem) instead of as an obscure builder failure later.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime import remote
from trtforge_runtime.artifacts import read_json, sha256_file
from trtforge_runtime.errors import ArtifactError, ConversionError, DatasetError
from trtforge_runtime.spec.model import Dataset, ModelDeploymentSpec, SourceFormat
from trtforge_runtime.tensors import SUPPORTED_DATATYPES, TensorInfo, onnx_io
from trtforge_runtime.train.heldout import DATATYPES, ModelInput

_log = logging.getLogger(__name__)

CALIBRATION_ROWS = 1024


Feeds = dict[str, np.ndarray]


@dataclass
class Samples:
    """Held-out rows for the accuracy gate (x_test/y_test) and calibration rows for int8 (x_calib).

    `x_test`/`x_calib` are one array (a single-input model) or one array per input name (samples.npz
    keys `x_test.<input>` / `x_calib.<input>`, a dataset's `x.<input>` split like training's).
    """

    x_test: np.ndarray | Feeds | None = None
    y_test: np.ndarray | None = None
    x_calib: np.ndarray | Feeds | None = None
    origin: str = "none"


@dataclass
class ModelSource:
    """A validated fp32 ONNX model ready for the precision transforms."""

    onnx_path: Path
    digest: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    samples: Samples = field(default_factory=Samples)
    origin: str = ""

    @property
    def input(self) -> TensorInfo:
        return self.inputs[0]

    @property
    def output(self) -> TensorInfo:
        return self.outputs[0]


def load_onnx(path: Path, what: str = "model") -> Any:
    """Load and check an ONNX file; ArtifactError naming the file and the problem when it is not valid."""
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise ArtifactError(f"{what} not found: {path}")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise ArtifactError(f"{what} {path} is not an ONNX model (cannot be decoded: {exc})") from None
    if not model.graph.node or not model.graph.output:
        raise ArtifactError(
            f"{what} {path} is not an ONNX model (no graph nodes/outputs: corrupt or not ONNX)"
        )
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{what} {path} is not a valid ONNX model: {first}") from None
    return model


def check_io(inputs: list[TensorInfo], outputs: list[TensorInfo], path: Path) -> None:
    """The engine profile needs a dynamic first (batch) dimension on every input (other dynamic
    dimensions need spec.engine.inputs, see profiles.py); every input and output has a datatype the
    engines take (SUPPORTED_DATATYPES)."""
    if not inputs:
        raise ArtifactError(f"model {path} has no inputs")
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for t in tensors:
            if t.datatype == "BYTES":
                raise ConversionError(
                    f"model {kind} {t.name!r} is BYTES (strings): TensorRT and TensorRT-RTX have no string "
                    "tensors; move the string handling (tokenizer, lookup) out of the model"
                )
            if t.datatype not in SUPPORTED_DATATYPES:
                raise ConversionError(
                    f"model {kind} {t.name!r} is {t.datatype}; trtforge converts models whose inputs and "
                    f"outputs are {', '.join(SUPPORTED_DATATYPES)}"
                )
    for t in inputs:
        if not t.shape:
            raise ConversionError(f"model input {t.name!r} is a scalar; a batch dimension is needed")
        if t.shape[0] != -1:
            raise ConversionError(
                f"model input {t.name!r} has a fixed batch dimension {t.shape[0]} (shape {list(t.shape)}); "
                "export the model with a dynamic batch dimension"
            )


def from_model_dir(model_dir: Path) -> ModelSource:
    """A `trtforge train` output folder, checked against its manifest's digest."""
    if not model_dir.is_dir():
        raise ArtifactError(f"model folder not found: {model_dir}")
    manifest = read_json(model_dir / "manifest.json", "model manifest")
    onnx_path = model_dir / "model.onnx"
    model = load_onnx(onnx_path)
    digest = sha256_file(onnx_path)
    if manifest.get("digest") not in (None, digest):
        raise ArtifactError(
            f"model {onnx_path} does not match its manifest: digest {digest}, manifest says "
            f"{manifest.get('digest')} (the file was changed or truncated after training)"
        )
    inputs, outputs = onnx_io(model)
    check_io(inputs, outputs, onnx_path)
    return ModelSource(
        onnx_path, digest, inputs, outputs, _samples_npz(model_dir / "samples.npz"), str(model_dir.resolve())
    )


def _samples_npz(path: Path) -> Samples:
    if not path.exists():
        return Samples()
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"samples file {path} is unreadable: {exc}") from None
    return Samples(
        x_test=_named(arrays, "x_test"),
        y_test=arrays.get("y_test"),
        x_calib=_named(arrays, "x_calib"),
        origin=str(path),
    )


def _named(arrays: dict[str, np.ndarray], key: str) -> np.ndarray | Feeds | None:
    """`key` (one array) or `key.<input>` (one array per input) of a samples file."""
    per_input = {k.removeprefix(f"{key}."): v for k, v in arrays.items() if k.startswith(f"{key}.")}
    if per_input:
        typed = {name: _typed(a) for name, a in per_input.items()}
        feeds = {name: a for name, a in typed.items() if a is not None}
        return feeds if len(feeds) == len(typed) else None
    return _f32(arrays.get(key))


def _typed(a: np.ndarray) -> np.ndarray | None:
    """Float rows as contiguous float32, integer and boolean rows in their own type; None when empty."""
    if a is None or len(a) == 0:
        return None
    return np.ascontiguousarray(a, dtype=np.float32) if a.dtype.kind == "f" else np.ascontiguousarray(a)


def _f32(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None or len(a) == 0 else np.ascontiguousarray(a, dtype=np.float32)


def dataset_samples(
    dataset: Dataset,
    seed: int,
    inputs: list[TensorInfo] | None = None,
    *,
    base_dir: Path | None = None,
    field: str = "",
    task: str = "classification",
) -> Samples:
    """Gate and calibration rows from a dataset spec (the training engineer's loader), one array per
    model input of `inputs`: an .npz's `<features>.<input>` arrays, or a model of one input's features
    (without `inputs`: the features as one array).

    A relative dataset path is relative to `base_dir` (the manifest's folder); `field` names the spec
    section in error messages.
    """
    try:
        from trtforge_runtime.train.datasets import DatasetSettings, load_dataset, load_input_splits
    except ImportError as exc:
        raise DatasetError(
            f"cannot load dataset {dataset.uri}: the dataset module is unavailable ({exc})"
        ) from None
    settings = DatasetSettings.from_env(base_dir=base_dir, field=field or "spec.model.train.dataset")
    if inputs is None:
        one = load_dataset(dataset, seed, settings, task)
        return Samples(_f32(one.x_test), one.y_test, _f32(one.x_train[:CALIBRATION_ROWS]), origin=dataset.uri)
    splits = load_input_splits(dataset, seed, model_inputs(inputs), settings, task)
    calib = {name: a[:CALIBRATION_ROWS] for name, a in splits.x_train.items()}
    return Samples(splits.x_test, splits.y_test, calib, origin=dataset.uri)


def model_inputs(inputs: list[TensorInfo]) -> list[ModelInput]:
    """The model's inputs as the dataset loader checks rows against them (numpy dtype, shape after the
    batch dimension with None where it is dynamic)."""
    numpy_names = {v2: name for name, v2 in DATATYPES.items()}
    return [
        ModelInput(t.name, numpy_names[t.datatype], tuple(None if d < 0 else d for d in t.shape[1:]))
        for t in inputs
    ]


def fetch_source(uri: str, workdir: Path) -> Path:
    """An s3:// (any fsspec URI) model source downloaded into `workdir`: the file (.onnx, .keras) or the
    folder (a SavedModel) at `uri`. Credentials come from the environment (AWS_ACCESS_KEY_ID...; in a
    cluster, the keys of spec.storage.secretRef); RemoteStorageError names the URI when it cannot be read."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    dest = workdir / "fetched-source"
    folder = remote.RemoteFolder.open(uri)
    files = folder.files()
    if files:  # a folder: every file under it
        _log.info("downloading model source folder %s (%d files)", uri, len(files))
        folder.download(files, dest / name)
    else:
        _log.info("downloading model source %s", uri)
        remote.RemoteFolder.open(uri.rstrip("/").rsplit("/", 1)[0]).download([name], dest)
    return dest / name


def local_path(uri: str) -> Path:
    """A source URI as a local path: a path, file://PATH, or pvc://CLAIM/PATH at
    $TRTFORGE_PVC_ROOT/CLAIM/PATH, where the operator mounts the claim (the datasets' contract)."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if uri.startswith("pvc://"):
        claim, _, sub = uri.removeprefix("pvc://").partition("/")
        if not claim or not sub.strip("/"):
            raise ArtifactError(f"model source {uri}: a pvc URI needs the form pvc://CLAIM/PATH")
        from trtforge_runtime.train.datasets import DatasetSettings

        return DatasetSettings.from_env().pvc_root / claim / sub
    if "://" in uri:
        raise ArtifactError(
            f"model source {uri}: only local paths, file:// and pvc:// URIs are read directly "
            "(s3:// and other remote URIs are downloaded first)"
        )
    return Path(uri)


def savedmodel_to_onnx(saved_model: Path, out: Path, opset: int = 17, signature: str | None = None) -> Path:
    """A SavedModel folder to ONNX via `python -m tf2onnx.convert` (TensorFlow runs out of process);
    `signature` names the serving signature (spec.model.source.signature; tf2onnx's default else)."""
    if not (saved_model / "saved_model.pb").is_file():
        raise ArtifactError(f"{saved_model} is not a SavedModel folder (no saved_model.pb)")
    cmd = [
        sys.executable, "-m", "tf2onnx.convert",
        "--saved-model", str(saved_model), "--opset", str(opset), "--output", str(out),
    ]  # fmt: skip
    if signature is not None:
        cmd += ["--signature_def", signature]
    _log.info("converting SavedModel %s to ONNX (tf2onnx, opset %d)", saved_model, opset)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        if signature is not None and "signature not in model" in proc.stderr.lower():
            raise ArtifactError(
                f"spec.model.source.signature {signature!r}: SavedModel {saved_model} has no such serving "
                f"signature ({tail.splitlines()[-1]})"
            )
        if "cannot parse file" in proc.stderr.lower():
            raise ArtifactError(
                f"SavedModel {saved_model}: {saved_model / 'saved_model.pb'} is corrupt or not a SavedModel "
                "(TensorFlow cannot parse it)"
            )
        raise ConversionError(f"tf2onnx could not convert SavedModel {saved_model}:\n{tail}")
    _name_batch_dims(out)
    return out


# Load a .keras file and export it as a SavedModel whose serving_default signature takes the model's
# inputs under their Keras names and returns its outputs under the output layers' names. The modules
# of the model's custom objects (a registered custom layer records its module in config.json) are
# imported first, found next to the .keras file or on PYTHONPATH: Keras finds a registered class only
# once its module has run.
_KERAS_EXPORT = """
import importlib
import json
import os
import sys
import zipfile

import keras
import tensorflow as tf


def custom_modules(node):
    if isinstance(node, dict):
        module = node.get("module")
        if isinstance(module, str) and node.get("registered_name"):
            if module.split(".")[0] not in ("keras", "tensorflow", "builtins", "__main__"):
                yield module
        for value in node.values():
            yield from custom_modules(value)
    elif isinstance(node, list):
        for value in node:
            yield from custom_modules(value)


sys.path[:0] = [os.path.dirname(os.path.abspath(sys.argv[1]))]
try:
    with zipfile.ZipFile(sys.argv[1]) as archive:
        config = json.loads(archive.read("config.json"))
except (zipfile.BadZipFile, KeyError, ValueError, OSError):
    config = None  # keras.models.load_model names what is wrong with the file
for module in sorted(set(custom_modules(config))):
    try:
        importlib.import_module(module)
    except ImportError as exc:
        sys.exit(
            f"its custom objects are defined in module {module!r}, which cannot be imported ({exc}); "
            f"put {module.replace('.', '/')}.py next to the .keras file or on PYTHONPATH"
        )
try:
    model = keras.models.load_model(sys.argv[1], compile=False)
except Exception as exc:
    sys.exit(str(exc).split(" Full object config:")[0].replace(chr(10), " "))
names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])
specs = [tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=t.name.split(":")[0]) for t in model.inputs]


def serve(*xs):
    outs = model(list(xs) if len(xs) > 1 else xs[0], training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return dict(zip(names, outs))


archive = keras.export.ExportArchive()
archive.track(model)
archive.add_endpoint("serving_default", serve, input_signature=specs)
archive.write_out(sys.argv[2], verbose=False)
"""


def keras_to_onnx(keras_file: Path, out: Path, opset: int = 17) -> Path:
    """A Keras 3 `.keras` file to ONNX: exported as a SavedModel (its own input and output names) in a
    subprocess, then tf2onnx. Custom layers must be registered Keras serializables; their modules are
    imported from the .keras file's folder or PYTHONPATH."""
    if not keras_file.is_file():
        raise ArtifactError(f"Keras model file not found: {keras_file}")
    if keras_file.suffix != ".keras":
        raise ArtifactError(f"model source {keras_file}: format keras needs a .keras file")
    saved = out.parent / "keras-savedmodel"
    _log.info("exporting Keras model %s as a SavedModel", keras_file)
    proc = subprocess.run(
        [sys.executable, "-c", _KERAS_EXPORT, str(keras_file), str(saved)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not (saved / "saved_model.pb").is_file():
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise ArtifactError(
            f"cannot load Keras model {keras_file}: {lines[-1] if lines else f'exit {proc.returncode}'}"
        )
    return savedmodel_to_onnx(saved, out, opset, "serving_default")


def _name_batch_dims(path: Path) -> None:
    """tf2onnx names dynamic dims `unk__N`; name every input's/output's first dimension `batch`. So that
    an unchanged source converts to the same bytes (its digest keys the engine cache), also drop the doc
    string (tf2onnx writes the SavedModel's folder there) and renumber the names tf2onnx generates."""
    import onnx

    from trtforge_runtime.train.export import renumber_generated_names

    model = onnx.load(str(path))
    for vi in [*model.graph.input, *model.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    model.doc_string = model.graph.doc_string = ""
    renumber_generated_names(model.graph, keep={v.name for v in [*model.graph.input, *model.graph.output]})
    path.write_bytes(model.SerializeToString(deterministic=True))


def from_spec_source(spec: ModelDeploymentSpec, workdir: Path, base_dir: Path | None = None) -> ModelSource:
    """The model named by spec.model.source (ONNX file or SavedModel), with its dataset's samples."""
    src = spec.model.source
    if src is None:
        raise ArtifactError("no --model folder given and the spec has no model.source to convert")
    if remote.is_remote(src.uri) and not src.uri.startswith("pvc://"):
        path = fetch_source(src.uri, workdir)
    else:
        path = local_path(src.uri)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path  # a relative source is relative to the manifest, like a dataset path
    if src.signature is not None and src.format != SourceFormat.SAVEDMODEL:
        raise ArtifactError("spec.model.source.signature applies to savedmodel sources only")
    if src.format == SourceFormat.SAVEDMODEL:
        if not path.is_dir():
            raise ArtifactError(f"SavedModel folder not found: {path}")
        onnx_path = savedmodel_to_onnx(path, workdir / "source.onnx", signature=src.signature)
    elif src.format == SourceFormat.KERAS:
        onnx_path = keras_to_onnx(path, workdir / "source.onnx")
    else:
        if path.is_dir():
            raise ArtifactError(f"model source {path} is a folder; format onnx needs an .onnx file")
        onnx_path = workdir / "source.onnx"
        load_onnx(path)  # validate before copying
        shutil.copyfile(path, onnx_path)
    model = load_onnx(onnx_path)
    inputs, outputs = onnx_io(model)
    if src.input_name is not None:
        chosen = [t for t in inputs if t.name == src.input_name]
        if not chosen:
            raise ArtifactError(
                f"spec.model.source.inputName {src.input_name!r} is not an input of the model "
                f"(inputs: {[t.name for t in inputs]})"
            )
        inputs = chosen + [t for t in inputs if t.name != src.input_name]
    if src.output_name is not None:
        outputs = select_output(onnx_path, outputs, src.output_name)
    check_io(inputs, outputs, onnx_path)
    samples = Samples()
    if src.dataset is not None:
        samples = dataset_samples(
            src.dataset,
            42,
            inputs,
            base_dir=base_dir,
            field="spec.model.source.dataset",
            task=str(spec.model.task),
        )
    return ModelSource(onnx_path, sha256_file(onnx_path), inputs, outputs, samples, src.uri)


def select_output(onnx_path: Path, outputs: list[TensorInfo], name: str) -> list[TensorInfo]:
    """spec.model.source.outputName: that output first, or the only output renamed to it (in the file)."""
    chosen = [t for t in outputs if t.name == name]
    if chosen:
        return chosen + [t for t in outputs if t.name != name]
    if len(outputs) != 1:
        raise ArtifactError(
            f"spec.model.source.outputName {name!r} is not an output of the model, and the model has "
            f"{len(outputs)} outputs, so it cannot be a new name for its only one "
            f"(outputs: {[t.name for t in outputs]})"
        )
    rename_output(onnx_path, outputs[0].name, name)
    _log.info("model output %r is served as %r (spec.model.source.outputName)", outputs[0].name, name)
    return [replace(outputs[0], name=name)]


def rename_output(path: Path, old: str, new: str) -> None:
    """Rename graph output `old` to `new` everywhere it appears (producer, consumers, value infos)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    taken = {v for n in graph.node for v in [*n.input, *n.output]} | {i.name for i in graph.initializer}
    if new in taken:
        raise ArtifactError(f"spec.model.source.outputName {new!r} already names another tensor of the model")
    for node in graph.node:
        node.input[:] = [new if v == old else v for v in node.input]
        node.output[:] = [new if v == old else v for v in node.output]
    for value in [*graph.output, *graph.value_info]:
        if value.name == old:
            value.name = new
    onnx.save(model, str(path))


def resolve(
    spec: ModelDeploymentSpec, model_dir: Path | None, workdir: Path, *, base_dir: Path | None = None
) -> ModelSource:
    """The model to convert: --model DIR when given, else spec.model.source.

    `base_dir` (the manifest's folder) is what relative dataset paths are relative to.
    """
    if model_dir is not None:
        source = from_model_dir(model_dir)
        train = spec.model.train
        if source.samples.x_test is None and train is not None and train.dataset is not None:
            source.samples = dataset_samples(
                train.dataset, train.seed, source.inputs, base_dir=base_dir, task=str(spec.model.task)
            )
        return source
    return from_spec_source(spec, workdir, base_dir)
