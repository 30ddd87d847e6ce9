"""`python -m kube_emulator`: serve an emulator until interrupted (for kubectl/helm by hand, or a
benchmark in another process), with the project CRD installed and a kubeconfig written."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from kube_emulator.helpers import Kube
from kube_emulator.runner import EmulatorThread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kube_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", type=Path, default=Path("kubeconfig.emulator"))
    parser.add_argument("--no-crd", action="store_true", help="do not install the project CRD")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmulatorThread(args.host, args.port) as emu:
        kube = Kube(emu, emu.write_kubeconfig(args.kubeconfig))
        if not args.no_crd:
            kube.install_project_crd()
        print(f"Kubernetes API emulator on {emu.url}; KUBECONFIG={args.kubeconfig.resolve()}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
