"""Loading a spec dataset into seeded, stratified train/validation/test splits, without TensorFlow.

Training and conversion (int8 calibration, the accuracy gate of `spec.model.source.dataset`) both read
datasets through `load_dataset`, so one URI means the same rows everywhere. Supported sources:

- `builtin://digits` (and iris, wine, breast_cancer): scikit-learn's bundled data, no download;
- a local path (a relative one is taken relative to the manifest's folder, `DatasetSettings.base_dir`),
  `file://PATH`, or `pvc://CLAIM/PATH` (read from `$TRTFORGE_PVC_ROOT/CLAIM/PATH`, where the operator
  mounts the claim);
- `s3://BUCKET/KEY` through fsspec, when the `s3` extra (s3fs) is installed.

Files are `.npz` (arrays under the `features`/`label` keys, default `x`/`y`) or `.csv` (a header row;
the `label` column, default `label`, is the class, every other column a feature). A model of several
inputs takes an `.npz` with one array per input under `<features>.<input>` (`x.image`, `x.tabular`: the
keys of samples.npz, `x_test.<input>`), read by `load_input_splits` against the model's inputs and split
with the same permutation for every input. Every failure raises `DatasetError` naming the URI and, where
it applies, the key, column, line or shapes at fault.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime.errors import DatasetError
from trtforge_runtime.spec.model import Dataset
from trtforge_runtime.train.heldout import ModelInput, as_input, check_input_names, class_indices, read_npz

log = logging.getLogger(__name__)

PVC_ROOT_ENV = "TRTFORGE_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
SUPPORTED = "builtin://NAME, a local path, file://PATH, pvc://CLAIM/PATH or s3://BUCKET/KEY"
DEFAULT_LABEL = {"npz": "y", "csv": "label"}
TRAIN_FIELD = "spec.model.train.dataset"


@dataclass(frozen=True)
class Splits:
    """Seeded splits; x float32 raw features (normalization is a layer inside the model), y int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


@dataclass(frozen=True)
class DatasetSettings:
    """Where pvc:// URIs are mounted (from the environment) and what relative paths are relative to.

    `base_dir` is the folder of the manifest that names the dataset (`-f FILE`), so `uri: iris.csv` means
    the same file from any working directory; None leaves relative paths to the working directory.
    `field` is the manifest path of the dataset section, used in error messages.
    """

    pvc_root: Path = Path(DEFAULT_PVC_ROOT)
    base_dir: Path | None = None
    field: str = TRAIN_FIELD

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        base_dir: Path | None = None,
        field: str = TRAIN_FIELD,
    ) -> DatasetSettings:
        env = os.environ if env is None else env
        return cls(pvc_root=Path(env.get(PVC_ROOT_ENV) or DEFAULT_PVC_ROOT), base_dir=base_dir, field=field)


def _builtin_loaders() -> dict[str, Callable[[], Any]]:
    from sklearn import datasets as skd

    return {
        "digits": skd.load_digits,
        "iris": skd.load_iris,
        "wine": skd.load_wine,
        "breast_cancer": skd.load_breast_cancer,
        "diabetes": skd.load_diabetes,  # regression: 10 features, a disease-progression score
    }


BUILTIN_NAMES = ("digits", "iris", "wine", "breast_cancer", "diabetes")


def load_dataset(
    spec: Dataset, seed: int, settings: DatasetSettings | None = None, task: str = "classification"
) -> Splits:
    """Read the dataset `spec` names and split it: test first, then validation from the rest."""
    x, y = load_arrays(spec, settings, task)
    return split(x, y, spec, seed, stratify=task == "classification")


def load_arrays(
    spec: Dataset, settings: DatasetSettings | None = None, task: str = "classification"
) -> tuple[np.ndarray, np.ndarray]:
    """All rows as float32 features and labels as `task` needs them (trtforge_runtime.tasks), validated."""
    settings = settings or DatasetSettings.from_env()
    uri = spec.uri
    if uri.startswith("builtin://"):
        x, y = _builtin(uri)
        label = spec.label or DEFAULT_LABEL["npz"]
    else:
        fmt = _format_of(spec, settings.field)
        label = spec.label or DEFAULT_LABEL[fmt]
        data = _read_bytes(uri, settings)
        if fmt == "npz":
            x, y = _pick_npz(_npz_arrays(data, uri), uri, spec.features, label, settings.field)
        else:
            x, y = _parse_csv(data, uri, label, settings.field)
    return _validate_task(x, y, uri, spec.features, label, task)


def _builtin(uri: str) -> tuple[np.ndarray, np.ndarray]:
    name = uri.removeprefix("builtin://")
    loaders = _builtin_loaders()
    if name not in loaders:
        raise DatasetError(f"dataset {uri}: unknown builtin dataset {name!r}; known: {', '.join(loaders)}")
    bunch = loaders[name]()
    return np.asarray(bunch.data), np.asarray(bunch.target)


def _validate_task(
    x: np.ndarray, y: np.ndarray, uri: str, features: str, label: str, task: str
) -> tuple[np.ndarray, np.ndarray]:
    """Features as float32 and labels as `task` has them, validated."""
    if task != "classification":
        x, _ = _validate(x, np.zeros(len(x), dtype=np.int64), uri, features, label)
        return x, _labels(y, len(x), uri, label, task)
    return _validate(x, y, uri, features, label)


def split(x: np.ndarray, y: np.ndarray, spec: Dataset, seed: int, *, stratify: bool = True) -> Splits:
    """Seeded test and validation splits, stratified by class (unless a class is too rare or `stratify`
    is False, as for regression and multi-label targets)."""
    train, val, test = split_indices(y, spec, seed, stratify=stratify)
    return Splits(
        x_train=np.ascontiguousarray(x[train]),
        y_train=np.ascontiguousarray(y[train]),
        x_val=np.ascontiguousarray(x[val]),
        y_val=np.ascontiguousarray(y[val]),
        x_test=np.ascontiguousarray(x[test]),
        y_test=np.ascontiguousarray(y[test]),
    )


def split_indices(
    y: np.ndarray, spec: Dataset, seed: int, *, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row indices of the train, validation and test splits (the rows `split` takes from every array)."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_test = int(np.ceil(n * spec.test_split))
    n_val = int(np.ceil((n - n_test) * spec.validation_split))
    if n_test < 1 or n_val < 1 or n - n_test - n_val < 1:
        raise DatasetError(
            f"dataset {spec.uri}: {n} rows are too few for testSplit {spec.test_split} and "
            f"validationSplit {spec.validation_split} (each split needs at least one row)"
        )

    def _split(a: np.ndarray, b: np.ndarray, size: int) -> list[np.ndarray]:
        if not stratify:
            plain: list[np.ndarray] = train_test_split(a, b, test_size=size, random_state=seed)
            return plain
        try:
            out: list[np.ndarray] = train_test_split(a, b, test_size=size, random_state=seed, stratify=b)
        except ValueError as exc:
            log.warning("dataset %s: stratified split impossible (%s); splitting unstratified", spec.uri, exc)
            out = train_test_split(a, b, test_size=size, random_state=seed, stratify=None)
        return out

    rest, test, y_rest, _ = _split(np.arange(n), y, n_test)
    train, val, _, _ = _split(rest, y_rest, n_val)
    return train, val, test


# ------------------------------------------------------------------------------ several model inputs

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class InputSplits:
    """Seeded splits with one array per model input (in the input's dtype; the same rows of each input
    in every split) and the labels as the task has them."""

    x_train: Feeds
    y_train: np.ndarray
    x_val: Feeds
    y_val: np.ndarray
    x_test: Feeds
    y_test: np.ndarray


def load_input_splits(
    spec: Dataset,
    seed: int,
    inputs: Sequence[ModelInput],
    settings: DatasetSettings | None = None,
    task: str = "classification",
) -> InputSplits:
    """The dataset's rows for a model's `inputs`, split like `load_dataset` (one permutation for all).

    An `.npz` holds one array per input under `<features>.<input>` (default `x.image`, `x.tabular`) and
    the labels under `label`; a model of one input may take a plain features array, a CSV or a builtin
    dataset, as training does (those rows stay float32: the conversion casts them to its input).
    """
    x, y = load_input_arrays(spec, inputs, settings, task)
    train, val, test = split_indices(y, spec, seed, stratify=task == "classification")

    def rows(idx: np.ndarray) -> Feeds:
        return {name: np.ascontiguousarray(a[idx]) for name, a in x.items()}

    return InputSplits(rows(train), y[train], rows(val), y[val], rows(test), y[test])


def load_input_arrays(
    spec: Dataset,
    inputs: Sequence[ModelInput],
    settings: DatasetSettings | None = None,
    task: str = "classification",
) -> tuple[Feeds, np.ndarray]:
    """All rows of the dataset as one array per model input, checked against the inputs, and labels."""
    settings = settings or DatasetSettings.from_env()
    uri, prefix, names = spec.uri, f"{spec.features}.", [t.name for t in inputs]
    label = spec.label or DEFAULT_LABEL["npz"]
    wanted = ", ".join(f"{prefix}{n}" for n in names)
    if uri.startswith("builtin://") or _format_of(spec, settings.field) != "npz":
        if len(inputs) != 1:
            raise DatasetError(
                f"dataset {uri} ({settings.field}) holds one feature array, but the model has {len(inputs)} "
                f"inputs ({', '.join(names)}): give an .npz with one array per input under {wanted} (the "
                f"same rows of each) and the labels under {label!r}"
            )
        one, y = load_arrays(spec, settings, task)
        return {names[0]: one}, y
    arrays = _npz_arrays(_read_bytes(uri, settings), uri)
    named = {k.removeprefix(prefix): a for k, a in arrays.items() if k.startswith(prefix)}
    where = f"dataset {uri}"
    if spec.features in arrays:
        if not named and len(inputs) == 1:
            one, y = _pick_npz(arrays, uri, spec.features, label, settings.field)
            one, y = _validate_task(one, y, uri, spec.features, label, task)
            return {names[0]: one}, y
        raise DatasetError(
            f"{where} has both {spec.features!r} and {sorted(prefix + k for k in named)}; keep one"
            if named
            else f"{where} has one features array {spec.features!r}, but the model has {len(inputs)} inputs "
            f"({', '.join(names)}): give one array per input under {wanted} (the same rows of each)"
        )
    _check_input_keys(named, names, where, prefix, wanted, sorted(arrays))
    if label not in arrays:
        raise DatasetError(
            f"{where}: label key {label!r} not in the archive (set {settings.field}.label); "
            f"available keys: {', '.join(sorted(arrays))}"
        )
    rows = _row_counts({f"{prefix}{n}": named[n] for n in names} | {label: arrays[label]}, where)
    x = {t.name: as_input(named[t.name], t, f"{where}: {prefix}{t.name}", DatasetError) for t in inputs}
    return x, _labels(arrays[label], rows, uri, label, task)


def _row_counts(arrays: Mapping[str, np.ndarray], where: str) -> int:
    """The one row count of `arrays`; DatasetError listing each array's when they differ or are 0."""
    counts = {k: len(a) if a.ndim else 0 for k, a in arrays.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in counts.items())
        raise DatasetError(
            f"{where}: the arrays have different row counts ({listed}); each needs one row per example"
        )
    rows = next(iter(counts.values()))
    if not rows:
        raise DatasetError(f"{where}: no rows")
    return rows


def _check_input_keys(
    named: Mapping[str, np.ndarray], names: list[str], where: str, prefix: str, wanted: str, keys: list[str]
) -> None:
    """Every model input has its `<features>.<input>` array and every such array names an input."""
    if not named:
        raise DatasetError(
            f"{where} has no arrays for the model's inputs: expected {wanted} (the features key and the "
            f"input's name); keys: {', '.join(keys) or '(none)'}"
        )
    check_input_names(named, names, where, prefix, ", ".join(keys), DatasetError)


# ------------------------------------------------------------------------------------------- reading


def _format_of(spec: Dataset, field: str = TRAIN_FIELD) -> str:
    fmt = str(spec.format)
    if fmt != "auto":
        return fmt
    name = spec.uri.lower().rstrip("/")
    for ext in ("npz", "csv"):
        if name.endswith(f".{ext}"):
            return ext
    raise DatasetError(
        f"dataset {spec.uri}: cannot tell the format from the file name (expected .npz or .csv); "
        f"set {field}.format to npz or csv"
    )


def local_path(uri: str, settings: DatasetSettings) -> Path | None:
    """The filesystem path of a local, file:// or pvc:// URI; None for a remote (fsspec) URI."""
    if uri.startswith("file://"):
        rest = uri.removeprefix("file://")
        return Path(rest.removeprefix("localhost/") if rest.startswith("localhost/") else rest)
    if uri.startswith("pvc://"):
        claim, _, rest = uri.removeprefix("pvc://").partition("/")
        if not claim or not rest:
            raise DatasetError(f"dataset {uri}: a pvc URI needs the form pvc://CLAIM/PATH")
        return settings.pvc_root / claim / rest
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        if scheme == "s3":
            return None
        raise DatasetError(f"dataset {uri}: unsupported scheme {scheme!r}; use {SUPPORTED}")
    path = Path(uri).expanduser()
    if not path.is_absolute() and settings.base_dir is not None:
        return settings.base_dir / path
    return path


def _read_bytes(uri: str, settings: DatasetSettings) -> bytes:
    path = local_path(uri, settings)
    if path is not None:
        if not path.exists():
            raise DatasetError(f"dataset {uri}: not found ({path})")
        if not path.is_file():
            raise DatasetError(f"dataset {uri}: not a file ({path})")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"dataset {uri}: unreadable ({path}): {exc.strerror or exc}") from None
    return _read_remote(uri)


def _read_remote(uri: str) -> bytes:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is part of the train extra
        raise DatasetError(
            f"dataset {uri}: reading remote URIs needs fsspec: pip install 'trtforge[train]'"
        ) from None
    scheme = uri.split("://", 1)[0]
    try:
        with fsspec.open(uri, "rb") as fh:
            data: bytes = fh.read()
    except ImportError:
        raise DatasetError(
            f"dataset {uri}: reading {scheme}:// needs the {scheme} extra: pip install 'trtforge[{scheme}]'"
        ) from None
    except FileNotFoundError:
        raise DatasetError(f"dataset {uri}: not found") from None
    except PermissionError as exc:
        raise DatasetError(f"dataset {uri}: access denied: {exc}") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"dataset {uri}: unreadable: {exc}") from None
    return data


def _npz_arrays(data: bytes, uri: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive; DatasetError when it is not one or holds pickled objects."""
    return read_npz(io.BytesIO(data), f"dataset {uri}", DatasetError)


def _pick_npz(
    arrays: Mapping[str, np.ndarray], uri: str, features: str, label: str, field: str = TRAIN_FIELD
) -> tuple[np.ndarray, np.ndarray]:
    """The features and label arrays of an archive of one features array."""
    keys = sorted(arrays)
    for role, key in (("features", features), ("label", label)):
        if key not in keys:
            per_input = [k for k in keys if k.startswith(f"{features}.")]
            hint = (
                f"; {', '.join(per_input)} are one array per input, which feed an imported model of "
                "several inputs (spec.model.source.dataset)"
                if role == "features" and per_input
                else ""
            )
            raise DatasetError(
                f"dataset {uri}: {role} key {key!r} not in the archive (set {field}.{role}); "
                f"available keys: {', '.join(keys) or '(none)'}{hint}"
            )
    return arrays[features], arrays[label]


def _parse_csv(data: bytes, uri: str, label: str, field: str = TRAIN_FIELD) -> tuple[np.ndarray, np.ndarray]:
    """Header + numeric rows; the `label` column is the class. NaN/inf cells are refused by position."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"dataset {uri}: not UTF-8 text: {exc}") from None
    reader = csv.reader(io.StringIO(text))
    rows = [(reader.line_num, r) for r in reader if r and any(c.strip() for c in r)]
    if not rows:
        raise DatasetError(f"dataset {uri}: empty CSV file")
    header = [c.strip() for c in rows[0][1]]
    if label not in header:
        raise DatasetError(
            f"dataset {uri}: label column {label!r} ({field}.label) is not in the CSV header; "
            f"columns: {', '.join(header)}"
        )
    if len(rows) < 2:
        raise DatasetError(f"dataset {uri}: the CSV file has a header but no rows")
    li = header.index(label)
    feature_cols = [i for i in range(len(header)) if i != li]
    if not feature_cols:
        raise DatasetError(f"dataset {uri}: the CSV file has no feature columns besides {label!r}")
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for r, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DatasetError(
                f"dataset {uri}: line {line} has {len(row)} columns, the header has {len(header)}"
            )
        for c, cell in enumerate(row):
            try:
                values[r, c] = float(cell)
            except ValueError:
                raise DatasetError(
                    f"dataset {uri}: line {line}, column {header[c]!r}: {cell!r} is not a number"
                ) from None
            if not np.isfinite(values[r, c]):
                raise DatasetError(
                    f"dataset {uri}: line {line}, column {header[c]!r}: {cell.strip()!r} is not a finite "
                    "number (NaN and infinite values are refused)"
                )
    return values[:, feature_cols], values[:, li]


# ---------------------------------------------------------------------------------------- validation


def _validate(
    x: np.ndarray, y: np.ndarray, uri: str, features: str, label: str
) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"dataset {uri}: features {features!r} must be numeric, got dtype {x.dtype}")
    y64 = _class_labels(y, uri, label)
    if x.ndim == 0:
        raise DatasetError(f"dataset {uri}: features {features!r} is a scalar, not rows of features")
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] != y64.shape[0]:
        raise DatasetError(
            f"dataset {uri}: features {features!r} has shape {tuple(x.shape)} but label {label!r} has shape "
            f"{tuple(y64.shape)}: they need the same number of rows"
        )
    if x.shape[0] == 0:
        raise DatasetError(f"dataset {uri}: no rows")
    x32 = x.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(x32)))
    if bad:
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(x32))[0])
        raise DatasetError(
            f"dataset {uri}: features {features!r} hold {bad} NaN or infinite values "
            f"(the first at row {first[0]}, index {list(first[1:])})"
        )
    return x32, y64


def _labels(y: np.ndarray, rows: int, uri: str, label: str, task: str) -> np.ndarray:
    """Labels as `task` has them (class indices, float targets, a 0/1 matrix), one per row."""
    if task != "classification":
        from trtforge_runtime.tasks import validate_labels

        return validate_labels(task, y, rows, f"dataset {uri}: label {label!r}")
    return _class_labels(y, uri, label)


def _class_labels(y: np.ndarray, uri: str, label: str) -> np.ndarray:
    """One non-negative integer class index per row, as int64."""
    return class_indices(y, f"dataset {uri}: label {label!r}", DatasetError)
