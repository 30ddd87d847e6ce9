"""`trtforge operator`: `kopf run` with the operator's modules and settings.

Namespaces come from TRTFORGE_WATCH_NAMESPACES (empty = --all-namespaces), the liveness endpoint from
TRTFORGE_HEALTH_PORT, peering from TRTFORGE_PEERING_NAME (empty = --standalone). Extra `kopf run` options
given after `trtforge operator` are passed through and win (e.g. `--namespace`, `--verbose`).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging

from trtforge_operator.settings import OperatorSettings

HANDLER_MODULES = ("trtforge_operator.handlers", "trtforge_operator.autoscaling.handlers")
NAMESPACE_FLAGS = ("-n", "--namespace", "-A", "--all-namespaces")
PEERING_FLAGS = ("--standalone", "-P", "--peering")

log = logging.getLogger(__name__)


def modules() -> list[str]:
    """The handler modules to load: the autoscaler's only where it is installed."""
    found = []
    for name in HANDLER_MODULES:
        try:
            present = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            present = False
        if present:
            found.append(name)
    return found


def kopf_argv(settings: OperatorSettings, extra: list[str]) -> list[str]:
    argv = ["run"]
    for module in modules():
        argv += ["--module", module]
    given = {a.split("=", 1)[0] for a in extra}
    if not given & set(NAMESPACE_FLAGS):
        if settings.watch_namespaces:
            for ns in settings.watch_namespaces:
                argv += ["--namespace", ns]
        else:
            argv.append("--all-namespaces")
    if not given & {"-L", "--liveness"}:
        argv += ["--liveness", f"http://0.0.0.0:{settings.health_port}/healthz"]
    if not given & set(PEERING_FLAGS):
        argv += ["--peering", settings.peering_name] if settings.peering_name else ["--standalone"]
    return argv + [a for a in extra if a != "--"]


def run(args: argparse.Namespace) -> int:
    settings = OperatorSettings.from_env()  # fail fast on a bad variable, before kopf starts
    argv = kopf_argv(settings, list(getattr(args, "kopf_args", None) or []))
    log.info("kopf %s", " ".join(argv))
    from kopf.cli import main as kopf_main

    kopf_main.main(args=argv, prog_name="trtforge operator", standalone_mode=False)
    return 0
