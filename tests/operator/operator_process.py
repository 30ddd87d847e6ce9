"""`trtforge operator` as a real subprocess against the Kubernetes emulator (tests and benchmarks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

NAMESPACE = "ml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`trtforge operator` as a real subprocess against the emulator (restartable, RSS measurable)."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        verbose: bool = True,
        identity: str | None = None,
    ) -> None:
        # POD_NAME: the replica's Lease identity, kept across restarts (like a pod's name)
        self.identity = identity or f"trtforge-operator-{uuid.uuid4().hex[:8]}"
        self.verbose = verbose
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra_env = env or {}
        self.proc: Any = None
        self.port = 0

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        """Start and wait until live; a probe port taken meanwhile by another process is retried."""
        for _ in range(3):
            if self._start_once(timeout):
                return self
            self.kill()
        raise AssertionError(f"operator could not bind a probe port:\n{self.log()[-4000:]}")

    def _start_once(self, timeout: float) -> bool:
        self.port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "TRTFORGE_HEALTH_PORT": str(self.port),
            "TRTFORGE_WATCH_NAMESPACES": NAMESPACE,
            "TRTFORGE_WORKER_LIMIT": "20",
            "POD_NAME": self.identity,
            "POD_NAMESPACE": "default",
            **self.extra_env,
        }
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trtforge_runtime.cli",
                "operator",
                *(["--verbose"] if self.verbose else []),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if "address already in use" in self.log()[offset:]:
                return False
            try:  # /leader names the replica: a port taken by some other process does not count
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/leader", timeout=1) as resp:
                    if json.loads(resp.read()).get("identity") == self.identity:
                        return True
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"operator not live after {timeout} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
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

    def role(self) -> str:
        """What the readiness endpoint says: "leader", "standby" (or "starting")."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as resp:
                return str(resp.read().decode().strip())
        except OSError as exc:
            return f"unreachable: {exc}"

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
