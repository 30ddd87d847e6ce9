"""Fixtures of the serving tests (helpers live in serve_support.py, importable from this folder, as are the
conversion tests' model modules in ../convert)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# the models of the conversion tests (multi_io.py, test_profiles.py's sequence model); appended, so that
# `conftest` still resolves to tests/conftest.py
sys.path.append(str(Path(__file__).parents[1] / "convert"))

from serve_support import ServerThread, make_engine_dir, serve


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_engine_dir(tmp_path_factory.mktemp("engine") / "digits")


@pytest.fixture(scope="module")
def server(engine_dir: Path) -> Iterator[ServerThread]:
    srv = serve(engine_dir, max_body_bytes=1 << 20)
    yield srv
    srv.stop()
