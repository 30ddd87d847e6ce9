"""Held-out rows that custom training code brings itself: `$TRTFORGE_OUTPUT_DIR/samples.npz`.

Custom code without `spec.model.train.dataset`, and code whose model has several inputs (a dataset's rows
feed one input only), owns its data like a TFJob, so it also hands trtforge the rows the model never
trained on. It writes them with `Context.write_samples` or as an `.npz` of its own, under the keys of the
`samples.npz` a trained model folder publishes (trtforge_runtime.convert.source reads the same keys):

    x_test.<input>   held-out rows for each model input, by the input's name (a model of one input may
                     use plain `x_test`)
    y_test           their labels, one row per held-out row, as the task has them
    x_calib.<input>  optional: rows for int8 calibration (without them, precision best skips int8)

Every array is checked against the model's inputs here, and a problem is a `TrainingError` whose
`summary["customCode"]` is `badSamples`, naming the key, the input and what is wrong.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from trtforge_runtime.errors import DatasetError, TrainingError

SAMPLES_FILE = "samples.npz"
KIND = "badSamples"
TEST, LABELS, CALIB = "x_test", "y_test", "x_calib"
# numpy dtype names of model inputs -> V2 datatypes trtforge converts and serves (tensors.SUPPORTED_DATATYPES)
DATATYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "int8": "INT8",
    "uint8": "UINT8",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
}

Arrays = dict[str, np.ndarray]


def samples_error(message: str) -> TrainingError:
    err = TrainingError(message)
    err.summary = {"customCode": KIND}  # type: ignore[attr-defined]
    return err


@dataclass(frozen=True)
class ModelInput:
    """One input of the user's model: its name, numpy dtype name and shape after the batch dimension
    (None where the model leaves a dimension dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ", ".join("-1" if d is None else str(d) for d in self.shape)
        return f"{self.name!r} ({self.dtype}, shape [-1{', ' if dims else ''}{dims}])"


@dataclass(frozen=True)
class HeldOut:
    """Checked held-out rows: one array per model input (in the model's dtype), labels, calibration rows."""

    x_test: Arrays
    y_test: np.ndarray
    x_calib: Arrays | None
    origin: str

    @property
    def rows(self) -> int:
        return len(self.y_test)


def write(
    path: Path,
    x_test: np.ndarray | Mapping[str, np.ndarray],
    y_test: np.ndarray,
    x_calib: np.ndarray | Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write held-out rows under the samples.npz keys: a mapping gives `x_test.<input>` per input, a
    single array plain `x_test` (a model of one input)."""
    arrays: dict[str, np.ndarray] = {LABELS: np.asarray(y_test)}
    for key, value in ((TEST, x_test), (CALIB, x_calib)):
        if value is None:
            continue
        if isinstance(value, Mapping):
            if not value:
                raise ValueError(f"{key}: no arrays given (a mapping of input name -> rows is expected)")
            arrays.update({f"{key}.{name}": np.asarray(a) for name, a in value.items()})
        else:
            arrays[key] = np.asarray(value)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def read(path: Path) -> Arrays:
    """All arrays of the samples file the code wrote; a clear error when it is not an .npz archive."""
    return read_npz(path, f"{SAMPLES_FILE} written by the custom training code", samples_error)


def read_npz(source: Path | IO[bytes], where: str, error: Callable[[str], Exception]) -> Arrays:
    """Every array of the .npz archive `source`; `error` naming `where` when it is not one (a single .npy
    array, not a zip) or holds pickled objects."""
    try:
        npz = np.load(source, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise error(f"{where}: not a valid .npz file: {exc}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise error(f"{where}: a single .npy array, not an .npz archive of named arrays")
    with npz:
        try:
            return {k: np.asarray(npz[k]) for k in npz.files}
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise error(f"{where}: cannot read arrays: {exc}") from None


def check_input_names(
    named: Mapping[str, np.ndarray],
    names: list[str],
    where: str,
    prefix: str,
    keys: str,
    error: Callable[[str], Exception],
    rows: str = "rows",
) -> None:
    """Every `<prefix><input>` array of `named` (keyed by input name) names an input of the model and every
    input has one; `error` listing the others and the archive's `keys` otherwise."""
    extra = [n for n in named if n not in names]
    if extra:
        raise error(
            f"{where}: {', '.join(prefix + n for n in extra)} names no input of the model "
            f"(its inputs: {', '.join(names)})"
        )
    missing = [n for n in names if n not in named]
    if missing:
        raise error(
            f"{where} has no {rows} for input {', '.join(repr(n) for n in missing)} "
            f"(expected {', '.join(prefix + n for n in missing)}; keys: {keys})"
        )


def check_model_inputs(inputs: list[ModelInput], what: str) -> None:
    """Every input of the model has a datatype trtforge can convert and serve."""
    for t in inputs:
        if t.dtype not in DATATYPES:
            hint = (
                " (strings: move the tokenizer or lookup out of the model)"
                if t.dtype in ("string", "object", "str")
                else " (cast inside the model, e.g. take float32 and cast after the input)"
            )
            raise samples_error(
                f"the model in {what} has input {t.name!r} of dtype {t.dtype}; trtforge converts and serves "
                f"inputs of {', '.join(DATATYPES)}{hint}"
            )


def check(arrays: Arrays, inputs: list[ModelInput], task: str, origin: str = SAMPLES_FILE) -> HeldOut:
    """The held-out rows of `arrays` (samples.npz keys) checked against the model's `inputs` and `task`."""
    from trtforge_runtime import tasks

    names = [t.name for t in inputs]
    x_test = _per_input(arrays, TEST, inputs, origin, required=True)
    assert x_test is not None
    if LABELS not in arrays:
        raise samples_error(
            f"{origin} has no {LABELS!r}: the held-out rows need their labels (keys: {_keys(arrays)})"
        )
    counts = {f"{TEST}.{n}": len(a) for n, a in x_test.items()} | {LABELS: len(arrays[LABELS])}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in counts.items())
        raise samples_error(
            f"{origin}: the held-out arrays have different row counts ({listed}); each needs one row per "
            "held-out example"
        )
    if not counts[LABELS]:
        raise samples_error(f"{origin}: no held-out rows (x_test and y_test are empty)")
    if task == tasks.CLASSIFICATION:
        y_test = class_indices(arrays[LABELS], f"{origin} {LABELS}", samples_error)
    else:
        try:
            y_test = tasks.validate_labels(task, arrays[LABELS], counts[LABELS], f"{origin} {LABELS}")
        except DatasetError as exc:
            raise samples_error(str(exc)) from None
    x_calib = _per_input(arrays, CALIB, inputs, origin, required=False)
    if x_calib is not None and len({len(a) for a in x_calib.values()}) > 1:
        listed = ", ".join(f"{CALIB}.{n} {len(a)}" for n, a in x_calib.items())
        raise samples_error(f"{origin}: the calibration arrays have different row counts ({listed})")
    unknown = [k for k in arrays if k != LABELS and k.split(".", 1)[0] not in (TEST, CALIB)]
    if unknown:
        raise samples_error(
            f"{origin} holds keys trtforge does not read: {unknown}; expected "
            f"{', '.join(f'{TEST}.{n}' for n in names)}, {LABELS} and optionally {CALIB}.<input>"
        )
    return HeldOut(x_test=x_test, y_test=y_test, x_calib=x_calib, origin=origin)


def _keys(arrays: Arrays) -> str:
    return ", ".join(sorted(arrays)) or "(none)"


def _per_input(
    arrays: Arrays, key: str, inputs: list[ModelInput], origin: str, *, required: bool
) -> Arrays | None:
    """`key.<input>` for every input (or plain `key` for a model of one input), converted to each input's
    dtype; None when absent and not required."""
    names = [t.name for t in inputs]
    wanted = ", ".join(f"{key}.{n}" for n in names)
    named = {k.removeprefix(f"{key}."): a for k, a in arrays.items() if k.startswith(f"{key}.")}
    if key in arrays:
        if len(inputs) != 1:
            raise samples_error(
                f"{origin} has one {key!r} array, but the model has {len(inputs)} inputs "
                f"({', '.join(names)}): give one array per input ({wanted})"
            )
        if named:
            raise samples_error(f"{origin} has both {key!r} and {sorted(named)}; keep one")
        named = {names[0]: arrays[key]}
    if not named:
        if not required:
            return None
        raise samples_error(
            f"{origin} has no held-out rows for the model's inputs: expected {wanted} (keys: {_keys(arrays)})"
        )
    check_input_names(named, names, origin, f"{key}.", _keys(arrays), samples_error, "held-out rows")
    return {t.name: as_input(named[t.name], t, f"{origin} {key}.{t.name}") for t in inputs}


def as_input(
    a: np.ndarray, t: ModelInput, where: str, error: Callable[[str], Exception] = samples_error
) -> np.ndarray:
    """`a` converted to the input's dtype, after checking its shape and that the conversion loses nothing;
    `error` makes the exception (a dataset's rows raise DatasetError)."""
    want = np.dtype(t.dtype)
    shape = list(a.shape)
    fixed = a.ndim == 1 + len(t.shape) and all(
        d is None or d == s for d, s in zip(t.shape, a.shape[1:], strict=True)
    )
    if not fixed:
        raise error(f"{where} has shape {shape}, but the model takes input {t.describe()}")
    kind = a.dtype.kind
    if kind not in "fiub":
        how = {"U": "strings", "S": "bytes", "O": "objects"}.get(kind, "values")
        raise error(
            f"{where} holds {how} ({a.dtype}), which the model input {t.describe()} cannot take; "
            f"give {t.dtype} rows"
        )
    if kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            raise error(f"{where} holds {bad} NaN or infinite values")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing cast is refused just below
        cast = a.astype(want)
    if want.kind == "f" and a.size and not np.all(np.isfinite(cast)):  # beyond float16's range
        value = a.reshape(-1)[int(np.flatnonzero(~np.isfinite(cast.reshape(-1)))[0])].item()
        raise error(
            f"{where} holds values such as {value!r} beyond the range of {t.dtype}, the type of the model "
            f"input {t.describe()}"
        )
    if want.kind != "f" and a.size:
        # an integer or boolean input takes the rows only when no value changes (as the conversion gate)
        changed = np.argwhere(cast != a)
        if len(changed):
            value = a[tuple(changed[0])].item()
            raise error(
                f"{where} holds {a.dtype} values such as {value!r}, which the model input {t.describe()} "
                f"cannot take unchanged; give {t.dtype} rows"
            )
    return np.ascontiguousarray(cast)


def class_indices(y: np.ndarray, where: str, error: Callable[[str], Exception]) -> np.ndarray:
    """One non-negative integer class index per row (a column of one is taken as a row), as int64;
    `error` naming `where` and what is wrong otherwise."""
    if y.dtype.kind not in "biuf":
        raise error(f"{where} must hold integer class indices, got dtype {y.dtype}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise error(f"{where} must be one class index per row, got shape {tuple(y.shape)}")
    if y.dtype.kind == "f" and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
        raise error(f"{where} must hold integer class indices, got fractions")
    y64 = y.astype(np.int64)
    if len(y64) and y64.min() < 0:
        raise error(f"{where} holds negative class indices ({int(y64.min())})")
    return y64
