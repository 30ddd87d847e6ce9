"""`trtforge operator`: `kopf run` with the operator's modules and settings.

Namespaces come from TRTFORGE_WATCH_NAMESPACES (empty = --all-namespaces). kopf always runs
`--standalone`: high availability is the operator's own Lease-based leader election
(`trtforge_operator.leader`), under which every replica watches and only the leader acts; kopf's peering
would pause every replica of equal priority. The probe endpoints (/healthz, /readyz, /leader) are the
operator's own, on TRTFORGE_HEALTH_PORT. Extra `kopf run` options given after `trtforge operator` are
passed through and win (e.g. `--namespace`, `--verbose`).

Logging: kopf's format, configured once by kopf; `trtforge --log-level` picks kopf's level flag
(DEBUG -> --verbose, WARNING/ERROR -> --quiet), and the CLI's own root handler is removed so that every
line is printed once.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging

from trtforge_operator.settings import OperatorSettings

HANDLER_MODULES = ("trtforge_operator.handlers",)
NAMESPACE_FLAGS = ("-n", "--namespace", "-A", "--all-namespaces")
PEERING_FLAGS = ("--standalone", "-P", "--peering")
LEVEL_FLAGS = ("-v", "--verbose", "-d", "--debug", "-q", "--quiet")

log = logging.getLogger(__name__)


def modules() -> list[str]:
    """The handler modules to load."""
    found = []
    for name in HANDLER_MODULES:
        try:
            present = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            present = False
        if present:
            found.append(name)
    return found


def kopf_argv(settings: OperatorSettings, extra: list[str], log_level: str = "INFO") -> list[str]:
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
    if not given & set(PEERING_FLAGS):
        argv.append("--standalone")
    if not given & set(LEVEL_FLAGS):
        if log_level == "DEBUG":
            argv.append("--verbose")
        elif log_level in ("WARNING", "ERROR"):
            argv.append("--quiet")
    return argv + [a for a in extra if a != "--"]


def run(args: argparse.Namespace) -> int:
    settings = OperatorSettings.from_env()  # fail fast on a bad variable, before kopf starts
    level = str(getattr(args, "log_level", "INFO") or "INFO")
    argv = kopf_argv(settings, list(getattr(args, "kopf_args", None) or []), level)
    log.info("kopf %s", " ".join(argv))
    root = logging.getLogger()
    for handler in list(root.handlers):  # kopf installs its own: one line per record, in one format
        root.removeHandler(handler)
    from kopf.cli import main as kopf_main

    from trtforge_operator import handlers

    handlers.register_autoscaler_watches(settings)

    kopf_main.main(args=argv, prog_name="trtforge operator", standalone_mode=False)
    return 0
