"""Fixtures of the chart tests: a helm with private cache/config/data folders, and kubectl.

helm and kubectl come from scripts/tools.sh (.tools/bin) or PATH; without them the tests are skipped
with that reason (CI runs scripts/tools.sh first, so there they always run).
"""

from __future__ import annotations

import pytest
from charts.chartlib import Helm, find_tool


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = find_tool("helm")
    if binary is None:
        pytest.skip("helm not found in .tools/bin or on PATH: run `bash scripts/tools.sh`")
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def kubectl() -> str:
    binary = find_tool("kubectl")
    if binary is None:
        pytest.skip("kubectl not found in .tools/bin or on PATH: run `bash scripts/tools.sh`")
    return binary
