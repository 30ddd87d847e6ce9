"""`trtforge operator` as a real process against the box's API server, as its Deployment would run it.

The environment is what the Helm chart gives the operator (TRTFORGE_* settings); `kill()` is a crash
(SIGKILL, nothing cleaned up), `stop()` a pod deletion (SIGTERM, then SIGKILL after the grace period).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    def __init__(self, kubeconfig: Path, log_path: Path, env: dict[str, str]) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 90.0) -> OperatorProcess:
        port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "TRTFORGE_HEALTH_PORT": str(port),
            **self.env,
        }
        with self.log_path.open("ab") as log:
            log.write(f"\n===== operator start {self.starts + 1}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trtforge_runtime.cli", "operator", "--verbose"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"operator not live after {timeout} s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: the operator crashes mid-reconcile."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self, grace: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
