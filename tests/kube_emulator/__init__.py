"""An emulated Kubernetes API server for tests: kopf, the `kubernetes` client and kubectl talk to it
over real HTTP on 127.0.0.1. See docs/testing.md.

    from kube_emulator import EmulatorThread, Kube
    with EmulatorThread() as emu: ...

The pytest fixture `kube` lives in `kube_emulator.fixtures`: register it in a test directory's
conftest.py with `from kube_emulator.fixtures import kube  # noqa: F401`.
"""

from kube_emulator.emulator import Emulator
from kube_emulator.errors import ApiError
from kube_emulator.helpers import Kube
from kube_emulator.kopf_runner import KopfThread
from kube_emulator.runner import EmulatorThread, api_client, kubeconfig_text, write_kubeconfig

__all__ = [
    "ApiError",
    "Emulator",
    "EmulatorThread",
    "KopfThread",
    "Kube",
    "api_client",
    "kubeconfig_text",
    "write_kubeconfig",
]
