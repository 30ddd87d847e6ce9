from __future__ import annotations

from trtforge_operator import command
from trtforge_operator.settings import OperatorSettings


def test_defaults_watch_all_namespaces_standalone_with_liveness() -> None:
    argv = command.kopf_argv(OperatorSettings(), [])
    assert argv[0] == "run"
    assert argv[1:3] == ["--module", "trtforge_operator.handlers"]
    assert "--all-namespaces" in argv and "--standalone" in argv
    assert argv[argv.index("--liveness") + 1] == "http://0.0.0.0:8090/healthz"


def test_settings_shape_the_kopf_command() -> None:
    s = OperatorSettings(watch_namespaces=("ml", "prod"), peering_name="trtforge", health_port=9000)
    argv = command.kopf_argv(s, ["--verbose"])
    assert argv.count("--namespace") == 2 and "--all-namespaces" not in argv
    assert argv[argv.index("--peering") + 1] == "trtforge" and "--standalone" not in argv
    assert "http://0.0.0.0:9000/healthz" in argv and argv[-1] == "--verbose"


def test_explicit_kopf_options_win() -> None:
    argv = command.kopf_argv(
        OperatorSettings(watch_namespaces=("ml",)), ["-n", "other", "--liveness=http://x/h"]
    )
    assert "--namespace" not in argv and "--liveness" not in argv
    assert argv[-2:] == ["other", "--liveness=http://x/h"]


def test_autoscaler_module_is_loaded_only_when_present() -> None:
    mods = command.modules()
    assert mods[0] == "trtforge_operator.handlers"
    assert set(mods) <= set(command.HANDLER_MODULES)
