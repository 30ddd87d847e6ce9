"""pytest fixtures: `kube` (a fresh emulator per test, project CRD installed, kubeconfig written,
the `kubernetes` client and kopf's default login pointed at it) and `kube_emulator_session`.

Register with `pytest_plugins = ["kube_emulator.fixtures"]` in a conftest.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from kube_emulator.helpers import PROJECT_CRD, Kube, load_yaml_documents
from kube_emulator.runner import EmulatorThread
from kube_emulator.validation import check_crd_schema


def _project_crd_problems() -> list[str]:
    crd = load_yaml_documents(PROJECT_CRD)[0]
    problems = []
    for version in crd["spec"]["versions"]:
        problems += check_crd_schema(version["schema"]["openAPIV3Schema"])
    return problems


def start_kube(tmp_path: Path, *, install_crd: bool = True) -> tuple[EmulatorThread, Kube]:
    thread = EmulatorThread().start()
    kube = Kube(thread, thread.write_kubeconfig(tmp_path / "kubeconfig"))
    if install_crd:
        problems = _project_crd_problems()
        if problems:
            warnings.warn(
                f"{PROJECT_CRD.name} would be refused by a real API server ({len(problems)} problems, e.g. "
                f"{problems[0]}); the emulator installs it leniently",
                stacklevel=2,
            )
        kube.install_project_crd(lenient=bool(problems))
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
