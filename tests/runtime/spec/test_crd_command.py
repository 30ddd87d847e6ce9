"""`python -m trtforge_runtime.spec.crd --write | --check [--path FILE]`: what generate.sh and CI run."""

from __future__ import annotations

from pathlib import Path

import pytest
from trtforge_runtime.spec import crd


def test_write_then_check_and_a_stale_or_missing_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sub" / "crd.yaml"
    assert crd.main(["--check", "--path", str(path)]) == 1  # missing
    assert "is stale: run python -m trtforge_runtime.spec.crd --write" in capsys.readouterr().err
    assert crd.main(["--write", "--path", str(path)]) == 0
    assert path.read_text() == crd.render()
    assert f"wrote {path}" in capsys.readouterr().out
    assert crd.main(["--check", "--path", str(path)]) == 0
    assert f"{path} is up to date" in capsys.readouterr().out
    path.write_text(crd.render().replace("minimum: 1", "minimum: 0", 1))
    assert crd.main(["--check", "--path", str(path)]) == 1
    assert "is stale" in capsys.readouterr().err


def test_one_mode_is_required() -> None:
    with pytest.raises(SystemExit):
        crd.main([])
    with pytest.raises(SystemExit):
        crd.main(["--write", "--check"])
