from __future__ import annotations

from trtforge_operator import command
from trtforge_operator.settings import OperatorSettings


def test_defaults_watch_all_namespaces_standalone() -> None:
    argv = command.kopf_argv(OperatorSettings(), [])
    assert argv[0] == "run"
    assert argv[1:3] == ["--module", "trtforge_operator.handlers"]
    assert "--all-namespaces" in argv and "--standalone" in argv
    # HA is the operator's Lease: kopf's peering (which pauses equal-priority peers) is never used,
    # and the probes are the operator's own (they report leader / standby)
    assert "--peering" not in argv and "--liveness" not in argv


def test_settings_shape_the_kopf_command() -> None:
    s = OperatorSettings(watch_namespaces=("ml", "prod"), health_port=9000)
    argv = command.kopf_argv(s, ["--verbose"])
    assert argv.count("--namespace") == 2 and "--all-namespaces" not in argv
    assert "--standalone" in argv and argv[-1] == "--verbose"


def test_log_level_picks_kopfs_level_flag() -> None:
    assert "--verbose" in command.kopf_argv(OperatorSettings(), [], "DEBUG")
    assert "--quiet" in command.kopf_argv(OperatorSettings(), [], "WARNING")
    info = command.kopf_argv(OperatorSettings(), [], "INFO")
    assert not {"--verbose", "--quiet"} & set(info)
    assert command.kopf_argv(OperatorSettings(), ["-q"], "DEBUG").count("--verbose") == 0


def test_explicit_kopf_options_win() -> None:
    argv = command.kopf_argv(OperatorSettings(watch_namespaces=("ml",)), ["-n", "other"])
    assert "--namespace" not in argv
    assert argv[-2:] == ["-n", "other"]


def test_handler_module() -> None:
    assert command.modules() == ["trtforge_operator.handlers"]
