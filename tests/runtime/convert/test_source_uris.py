"""Where `trtforge convert` reads `spec.model.source.uri` from.

In a cluster the operator mounts the claim of a `pvc://CLAIM/PATH` source read-only at
`$TRTFORGE_PVC_ROOT/CLAIM` (default /mnt/pvc, storage.input_volumes), as for datasets; the conversion
reads the model there, whichever claim holds it (it used to look under the artifacts mount, where only the
store's own claim is).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from trtforge_runtime.convert import source
from trtforge_runtime.errors import ArtifactError


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
