"""Fixtures of the emulator's own tests: the `kube` fixture (imported, which registers it) and clients."""

from __future__ import annotations

from typing import Any

import pytest
from kube_emulator.fixtures import kube  # noqa: F401  (importing a fixture registers it here)
from kube_emulator.helpers import Kube


@pytest.fixture
def api(kube: Kube) -> Any:  # noqa: F811
    """A `kubernetes.client.ApiClient` for the emulator."""
    client = kube.client()
    yield client
    client.close()
