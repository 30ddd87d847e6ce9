"""scripts/test.sh: --help prints the usage and runs nothing (it used to start the whole run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_runs_nothing(tmp_path: Path, flag: str) -> None:
    # a copy of the script in an empty tree, with an interpreter that fails: any step it started would fail
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "test.sh", tmp_path / "scripts" / "test.sh")
    done = subprocess.run(
        ["bash", "scripts/test.sh", flag],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHON": "/bin/false"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: bash scripts/test.sh [PYTEST-ARGS...]")
    assert '-m "not slow"' in done.stdout
    assert done.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scripts"]  # no .venv, no .tools


def test_without_help_the_run_starts(tmp_path: Path) -> None:
    # the same copy without --help does start: it tries to create .venv with $PYTHON and fails
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "test.sh", tmp_path / "scripts" / "test.sh")
    done = subprocess.run(
        ["bash", "scripts/test.sh", "-m", "not slow"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHON": "/bin/false"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "usage:" not in done.stdout
