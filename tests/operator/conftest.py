"""Fixtures shared by the operator tests: the digits example's spec with changes, and plans built from it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from trtforge_operator.plan import Owner, Plan
from trtforge_operator.settings import OperatorSettings
from trtforge_runtime.spec.load import parse_spec

REPO = Path(__file__).resolve().parents[2]


def digits_doc() -> dict[str, Any]:
    return yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())


def spec_dict(**changes: Any) -> dict[str, Any]:
    """The digits example's spec with dotted-path changes, e.g. {"engine.precision": "fp32"}."""
    spec = copy.deepcopy(digits_doc()["spec"])
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return spec


def plan(
    spec: dict[str, Any] | None = None, settings: OperatorSettings | None = None, name: str = "digits"
) -> Plan:
    owner = Owner(name=name, namespace="ml", uid="0000-1111", generation=3)
    return Plan.build(owner, parse_spec(spec or spec_dict()), settings or OperatorSettings())


@pytest.fixture
def make_spec() -> Callable[..., dict[str, Any]]:
    return spec_dict


@pytest.fixture
def make_plan() -> Callable[..., Plan]:
    return plan


# ---------------------------------------------------------------------- integration: emulator + operator

from kube_emulator.fixtures import kube  # noqa: E402,F401  (the emulator fixture, re-exported)
from kube_emulator.helpers import Kube  # noqa: E402

NAMESPACE = "ml"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`trtforge operator` as a real subprocess against the emulator (restartable, RSS measurable)."""

    def __init__(self, kubeconfig: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra_env = env or {}
        self.proc: Any = None
        self.port = 0

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        import os
        import subprocess
        import sys
        import time
        import urllib.request

        self.port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "TRTFORGE_HEALTH_PORT": str(self.port),
            "TRTFORGE_WATCH_NAMESPACES": NAMESPACE,
            "TRTFORGE_WORKER_LIMIT": "20",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trtforge_runtime.cli", "operator", "--verbose"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"operator not live after {timeout} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: an operator crash, nothing cleaned up."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def cluster(kube: Kube) -> Kube:
    """The emulator with the `ml` namespace."""
    kube.create_namespace(NAMESPACE)
    return kube


@pytest.fixture
def operator(cluster: Kube, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    op = OperatorProcess(cluster.kubeconfig, tmp_path / "operator.log")
    op.start()
    yield op
    op.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(op.log()[-6000:])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
