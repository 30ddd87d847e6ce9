"""The TensorFlow-free dataset loader: sources, formats, splits, and errors that name what is wrong."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from trtforge_runtime.errors import DatasetError, ManifestError
from trtforge_runtime.spec.load import parse_manifest
from trtforge_runtime.spec.model import Dataset
from trtforge_runtime.train.datasets import DatasetSettings, load_arrays, load_dataset, local_path


def ds(uri: str, **kw: object) -> Dataset:
    return Dataset.model_validate({"uri": uri, **kw})


def test_builtin_digits_splits_are_stratified_seeded_and_disjoint() -> None:
    a = load_dataset(ds("builtin://digits"), seed=42)
    b = load_dataset(ds("builtin://digits"), seed=42)
    c = load_dataset(ds("builtin://digits"), seed=43)
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (1149, 288, 360)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert a.feature_shape == (64,) and a.num_classes == 10
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.y_test, c.y_test)
    # stratified: every class is in every split, in about the same proportion
    for y in (a.y_train, a.y_val, a.y_test):
        share = np.bincount(y, minlength=10) / len(y)
        assert share.min() > 0.08 and share.max() < 0.12
    rows = {r.tobytes() for r in a.x_train} | {r.tobytes() for r in a.x_val}
    assert sum(r.tobytes() in rows for r in a.x_test) < 5  # the digits data has a few duplicate images


def test_split_fractions_follow_the_spec() -> None:
    s = load_dataset(ds("builtin://iris", testSplit=0.1, validationSplit=0.5), seed=0)
    assert len(s.x_test) == 15 and len(s.x_val) == 68 and len(s.x_train) == 67


def test_unknown_builtin_names_the_known_ones() -> None:
    with pytest.raises(DatasetError, match=r"builtin://mnist.*unknown builtin dataset 'mnist'.*digits"):
        load_arrays(ds("builtin://mnist"))


def test_npz_from_path_and_file_uri(tmp_path: Path) -> None:
    x = np.arange(40 * 3, dtype=np.float64).reshape(40, 3)
    y = np.arange(40) % 2
    np.savez(tmp_path / "d.npz", feats=x, target=y)
    for uri in (str(tmp_path / "d.npz"), f"file://{tmp_path}/d.npz"):
        xs, ys = load_arrays(ds(uri, features="feats", label="target"))
        np.testing.assert_array_equal(xs, x.astype(np.float32))
        np.testing.assert_array_equal(ys, y)


def test_npz_missing_key_names_key_and_available_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(DatasetError) as err:
        load_arrays(ds(str(tmp_path / "d.npz")))
    msg = str(err.value)
    assert "features key 'x' not in the archive" in msg and "available keys: images, y" in msg
    assert str(tmp_path / "d.npz") in msg


def test_shape_mismatch_names_both_shapes(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 8, 8)), y=np.zeros(9, dtype=np.int64))
    with pytest.raises(DatasetError, match=r"'x' has shape \(10, 8, 8\) but label 'y' has shape \(9,\)"):
        load_arrays(ds(str(tmp_path / "d.npz")))


def test_label_must_be_one_class_per_row(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 3)), y=np.zeros((10, 4)))
    with pytest.raises(DatasetError, match=r"one class index per row, got shape \(10, 4\)"):
        load_arrays(ds(str(tmp_path / "d.npz")))


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([0.0, 1.5, 1.0, 0.0]), "integer class indices, got fractions"),
        (np.array([0, -1, 1, 0]), r"negative class indices \(-1\)"),
        (np.array(["a", "b", "a", "b"]), "integer class indices, got dtype <U1"),
    ],
)
def test_bad_labels(tmp_path: Path, y: np.ndarray, message: str) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=y)
    with pytest.raises(DatasetError, match=message):
        load_arrays(ds(str(tmp_path / "d.npz")))


def test_nan_features_are_refused(tmp_path: Path) -> None:
    x = np.zeros((4, 2))
    x[1, 1] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(4))
    with pytest.raises(DatasetError, match=r"1 NaN or infinite values \(the first at row 1, index \[1\]\)"):
        load_arrays(ds(str(tmp_path / "d.npz")))


def test_not_an_npz_file(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_text("hello")
    with pytest.raises(DatasetError, match=r"d.npz: not a valid .npz file"):
        load_arrays(ds(str(tmp_path / "d.npz")))


def test_csv_label_column_and_features(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,species\n1,2,0\n3,4.5,1\n\n5,6,2\n")
    x, y = load_arrays(ds(str(tmp_path / "d.csv"), label="species"))
    np.testing.assert_array_equal(x, np.array([[1, 2], [3, 4.5], [5, 6]], dtype=np.float32))
    np.testing.assert_array_equal(y, [0, 1, 2])


def test_csv_label_column_defaults_to_label(tmp_path: Path) -> None:
    """docs/training.md: the column named `label` holds the class (npz keeps its `y` key default)."""
    (tmp_path / "d.csv").write_text("a,label,b\n1,0,2\n3,1,4\n")
    x, y = load_arrays(ds(str(tmp_path / "d.csv")))
    np.testing.assert_array_equal(x, np.array([[1, 2], [3, 4]], dtype=np.float32))
    np.testing.assert_array_equal(y, [0, 1])


def test_csv_missing_label_column_names_the_field_and_columns(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,c\n1,2,0\n")
    with pytest.raises(DatasetError) as err:
        load_arrays(ds(str(tmp_path / "d.csv")))
    assert (
        "label column 'label' (spec.model.train.dataset.label) is not in the CSV header; columns: a, b, c"
        in str(err.value)
    )
    settings = DatasetSettings.from_env({}, field="spec.model.source.dataset")
    with pytest.raises(DatasetError, match=r"'species' \(spec\.model\.source\.dataset\.label\)"):
        load_arrays(ds(str(tmp_path / "d.csv"), label="species"), settings)


def test_csv_nan_names_the_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,0\n\n3,nan,1\n5,6,0\n")
    with pytest.raises(DatasetError, match=r"line 4, column 'b': 'nan' is not a finite number"):
        load_arrays(ds(str(tmp_path / "d.csv")))
    (tmp_path / "e.csv").write_text("a,label\n1,0\n-inf,1\n")
    with pytest.raises(DatasetError, match=r"line 3, column 'a': '-inf' is not a finite number"):
        load_arrays(ds(str(tmp_path / "e.csv")))


def test_relative_paths_resolve_against_the_manifest_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("a,label\n1,0\n2,1\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = DatasetSettings.from_env({}, base_dir=tmp_path)
    x, _ = load_arrays(ds("data/d.csv"), settings)
    np.testing.assert_array_equal(x, [[1], [2]])
    x, _ = load_arrays(ds("./data/d.csv"), settings)
    assert len(x) == 2
    assert local_path(str(tmp_path / "abs.csv"), settings) == tmp_path / "abs.csv"  # absolute: as is
    with pytest.raises(DatasetError, match=r"dataset data/d\.csv: not found \(data/d\.csv\)"):
        load_arrays(ds("data/d.csv"), DatasetSettings.from_env({}))  # no manifest folder: the cwd


def test_csv_bad_cells_name_the_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,label\n1,0\nabc,1\n")
    with pytest.raises(DatasetError, match=r"line 3, column 'a': 'abc' is not a number"):
        load_arrays(ds(str(tmp_path / "d.csv")))
    (tmp_path / "e.csv").write_text("a,label\n1,0,7\n")
    with pytest.raises(DatasetError, match="line 2 has 3 columns, the header has 2"):
        load_arrays(ds(str(tmp_path / "e.csv")))


def test_missing_file_names_the_uri(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/nope.npz"
    with pytest.raises(DatasetError, match=rf"dataset {uri}: not found"):
        load_arrays(ds(uri))
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(DatasetError, match="not a file"):
        load_arrays(ds(str(tmp_path / "dir.npz")))


def test_unreadable_file_names_the_uri(tmp_path: Path) -> None:
    path = tmp_path / "locked.npz"
    np.savez(path, x=np.zeros((2, 2)), y=np.zeros(2))
    path.chmod(0)
    try:
        try:
            path.read_bytes()
        except PermissionError:
            unreadable = str(path)
        else:  # root reads anything; /proc/self/mem is a regular file whose first page always fails (EIO)
            if not Path("/proc/self/mem").is_file():
                pytest.skip("no file here that this user cannot read")
            unreadable = "/proc/self/mem"
        with pytest.raises(DatasetError, match=rf"dataset {unreadable}: unreadable \({unreadable}\): "):
            load_arrays(ds(unreadable, format="npz"))
    finally:
        path.chmod(0o644)


def test_format_from_extension_or_spec(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.zeros(4))
    (tmp_path / "data.bin").write_bytes((tmp_path / "d.npz").read_bytes())
    with pytest.raises(DatasetError, match=r"cannot tell the format.*set spec\.model\.train\.dataset"):
        load_arrays(ds(str(tmp_path / "data.bin")))
    x, _ = load_arrays(ds(str(tmp_path / "data.bin"), format="npz"))
    assert x.shape == (4, 2)


def test_pvc_uri_reads_from_the_mount_root(tmp_path: Path) -> None:
    (tmp_path / "datasets" / "sub").mkdir(parents=True)
    np.savez(tmp_path / "datasets" / "sub" / "d.npz", x=np.ones((6, 2)), y=np.arange(6) % 2)
    settings = DatasetSettings.from_env({"TRTFORGE_PVC_ROOT": str(tmp_path)})
    x, _ = load_arrays(ds("pvc://datasets/sub/d.npz"), settings)
    assert x.shape == (6, 2)
    assert DatasetSettings.from_env({}).pvc_root == Path("/mnt/pvc")
    with pytest.raises(DatasetError, match=r"pvc://datasets/missing.npz: not found"):
        load_arrays(ds("pvc://datasets/missing.npz"), settings)
    with pytest.raises(DatasetError, match="pvc://CLAIM/PATH"):
        local_path("pvc://only-claim", settings)


def test_unsupported_scheme() -> None:
    # the manifest schema refuses it, naming the field ...
    doc = {
        "apiVersion": "trtforge.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "x"},
        "spec": {
            "model": {
                "train": {
                    "dataset": {"uri": "http://example.com/d.npz"},
                    "architecture": {"layers": [{"type": "Dense", "units": 2}]},
                }
            }
        },
    }
    with pytest.raises(ManifestError, match=r"spec.model.train.dataset.uri: String should match pattern"):
        parse_manifest(doc)
    # ... and the loader too, for datasets built in code
    with pytest.raises(DatasetError, match=r"gs://b/d.npz: unsupported scheme 'gs'; use builtin://NAME"):
        load_arrays(Dataset.model_construct(uri="gs://b/d.npz", format="npz", features="x", label="y"))


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_s3_without_the_extra_names_it() -> None:
    with pytest.raises(
        DatasetError,
        match=r"s3://bucket/d.npz: reading s3:// needs the s3 extra: "
        r"pip install 'trtforge\[s3\]'",
    ):
        load_arrays(ds("s3://bucket/d.npz"))


def test_remote_uris_go_through_fsspec(monkeypatch: pytest.MonkeyPatch) -> None:
    """The s3 code path is fsspec.open; exercise it for real with fsspec's in-memory filesystem."""
    import io

    import fsspec
    from trtforge_runtime.train import datasets

    buf = io.BytesIO()
    np.savez(buf, x=np.ones((5, 3)), y=np.arange(5) % 2)
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/d.npz", buf.getvalue())
    data = datasets._read_remote("memory://bucket/d.npz")
    assert data == buf.getvalue()
    with pytest.raises(DatasetError, match=r"memory://bucket/none.npz: not found"):
        datasets._read_remote("memory://bucket/none.npz")


def test_too_few_rows_to_split(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([0, 1]))
    with pytest.raises(DatasetError, match="2 rows are too few"):
        load_dataset(ds(str(tmp_path / "d.npz")), seed=0)


def test_rare_class_falls_back_to_an_unstratified_split(tmp_path: Path) -> None:
    y = np.array([0] * 30 + [1] * 30 + [2])
    np.savez(tmp_path / "d.npz", x=np.arange(61, dtype=np.float32)[:, None], y=y)
    s = load_dataset(ds(str(tmp_path / "d.npz")), seed=0)
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == 61


def test_the_module_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from trtforge_runtime.train.datasets import load_dataset; "
        "from trtforge_runtime.spec.model import Dataset; "
        "load_dataset(Dataset(uri='builtin://iris'), 0); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_iris_csv_example_is_scikit_learns_iris() -> None:
    """examples/iris.csv (read with the default `label` column, relative to examples/) is load_iris()."""
    from sklearn.datasets import load_iris

    examples = Path(__file__).resolve().parents[3] / "examples"
    x, y = load_arrays(ds("iris.csv"), DatasetSettings.from_env({}, base_dir=examples))
    iris = load_iris()
    np.testing.assert_array_equal(x, iris.data.astype(np.float32))
    np.testing.assert_array_equal(y, iris.target)
