"""pytest fixture `kube`: a fresh emulator per test, project CRD installed, kubeconfig written,
the `kubernetes` client and kopf's default login pointed at it.

Register it in a test directory's conftest.py with `from kube_emulator.fixtures import kube  # noqa: F401`
(or with `pytest_plugins = ["kube_emulator.fixtures"]` in the top-level tests/conftest.py only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kube_emulator.helpers import Kube
from kube_emulator.runner import EmulatorThread


def start_kube(tmp_path: Path, *, install_crd: bool = True) -> tuple[EmulatorThread, Kube]:
    """A started emulator and its `Kube` (kubeconfig in `tmp_path`), with the project CRD if asked."""
    thread = EmulatorThread().start()
    kube = Kube(thread, thread.write_kubeconfig(tmp_path / "kubeconfig"))
    if install_crd:
        try:
            kube.install_project_crd()
        except Exception:
            thread.stop()
            raise
    return thread, kube


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kube]:
    """A fresh emulator for one test, with the project's CRD installed.

    KUBECONFIG is set to its kubeconfig, and the `kubernetes` client's default configuration and
    default kubeconfig location point at it, so that code calling `kubernetes.config.load_kube_config()`
    (kopf's default login included) and `kubernetes.client.*Api()` reach the emulator.
    """
    thread, kube = start_kube(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    try:
        import kubernetes

        monkeypatch.setattr(
            kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kube.kubeconfig)
        )
        previous = kubernetes.client.Configuration.get_default_copy()
        kubernetes.config.load_kube_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - the client is in the operator extra
        previous = None
    try:
        yield kube
    finally:
        if previous is not None:
            kubernetes.client.Configuration.set_default(previous)
        thread.stop()
