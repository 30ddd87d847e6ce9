"""Where `trtforge convert` reads `spec.model.source.uri` from.

In a cluster the operator mounts the claim of a `pvc://CLAIM/PATH` source read-only at
`$TRTFORGE_PVC_ROOT/CLAIM` (default /mnt/pvc, storage.input_volumes), as for datasets; the conversion
reads the model there, whichever claim holds it (it used to look under the artifacts mount, where only the
store's own claim is). An `s3://` source (any fsspec URI; memory:// here) is downloaded into the work folder
first, a file or a whole folder (a SavedModel).
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from trtforge_runtime.convert import source
from trtforge_runtime.errors import ArtifactError, RemoteStorageError
from trtforge_runtime.spec.model import ModelDeploymentSpec

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "iris_two_outputs.py"


def test_a_pvc_source_is_read_where_the_operator_mounts_its_claim(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRTFORGE_PVC_ROOT", str(tmp_path))
    assert source.local_path("pvc://models/iris/m.onnx") == tmp_path / "models" / "iris" / "m.onnx"
    monkeypatch.delenv("TRTFORGE_PVC_ROOT")
    assert source.local_path("pvc://models/m.onnx") == Path("/mnt/pvc/models/m.onnx")


@pytest.mark.parametrize("uri", ["pvc://models", "pvc://models/", "pvc:///m.onnx"])
def test_a_pvc_source_without_claim_or_path_is_refused(uri: str) -> None:
    with pytest.raises(ArtifactError, match=r"pvc URI needs the form pvc://CLAIM/PATH"):
        source.local_path(uri)


def test_file_uris_and_paths_are_local() -> None:
    assert source.local_path("file:///data/m.onnx") == Path("/data/m.onnx")
    assert source.local_path("m.onnx") == Path("m.onnx")


# ------------------------------------------------------------------ s3:// (fsspec's memory:// here)
@pytest.fixture
def bucket() -> Iterator[str]:
    """A fresh memory:// prefix, removed afterwards (the memory filesystem is process-global)."""
    import fsspec

    root = f"memory://trtforge-source-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root.removeprefix("memory:/")):
        fs.rm(root.removeprefix("memory:/"), recursive=True)


def _iris_model(path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("iris_two_outputs_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.write(path))


def test_a_remote_onnx_source_is_downloaded_and_read(bucket: str, tmp_path: Path) -> None:
    import fsspec

    model = _iris_model(tmp_path / "iris.onnx")
    fsspec.filesystem("memory").put_file(str(model), f"{bucket.removeprefix('memory:/')}/models/iris.onnx")
    doc = {"model": {"source": {"uri": f"{bucket}/models/iris.onnx", "format": "onnx"}}}
    work = tmp_path / "work"
    work.mkdir()
    src = source.from_spec_source(ModelDeploymentSpec.model_validate(doc), work)
    assert (work / "fetched-source" / "iris.onnx").read_bytes() == model.read_bytes()
    assert [t.name for t in src.inputs] == ["features"]
    assert [t.name for t in src.outputs] == ["probabilities", "species"]
    assert src.origin == f"{bucket}/models/iris.onnx"  # engine.json names where the model came from


def test_a_remote_folder_source_comes_down_whole(bucket: str, tmp_path: Path) -> None:
    import fsspec

    fs, root = fsspec.filesystem("memory"), bucket.removeprefix("memory:/")
    fs.pipe_file(f"{root}/sm/saved_model.pb", b"pb")
    fs.pipe_file(f"{root}/sm/variables/variables.index", b"index")
    got = source.fetch_source(f"{bucket}/sm/", tmp_path)
    assert got == tmp_path / "fetched-source" / "sm"
    assert (got / "saved_model.pb").read_bytes() == b"pb"
    assert (got / "variables" / "variables.index").read_bytes() == b"index"


def test_a_missing_remote_source_is_named(bucket: str, tmp_path: Path) -> None:
    with pytest.raises(RemoteStorageError, match=rf"{bucket}/models: not found"):
        source.fetch_source(f"{bucket}/models/none.onnx", tmp_path)
