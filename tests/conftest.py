"""Shared test fixtures: paths of the repository and the example manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def digits_manifest() -> Path:
    return REPO / "examples" / "digits.yaml"
