from __future__ import annotations

import pytest
from trtforge_operator.errors import SettingsError
from trtforge_operator.settings import OperatorSettings


def test_defaults_work_without_environment() -> None:
    s = OperatorSettings.from_env({})
    assert s.watch_namespaces == ()
    assert s.clusterwide
    assert s.storage_uri == "pvc://trtforge-artifacts/"
    assert s.artifacts_mount == "/artifacts"
    assert s.worker_limit == 20
    assert s.health_port == 8090
    assert s.leader_election is True and s.lease_name == "trtforge-operator"
    assert (s.lease_duration_seconds, s.renew_deadline_seconds, s.retry_period_seconds) == (15.0, 10.0, 2.0)
    assert s.pod_name  # the hostname (a pod's hostname is its name)
    assert s.workload_service_account == "default"
    assert s.autoscaler_enabled is True
    assert s.autoscaler_modes == ("hpa", "keda")  # unset: every mode (the chart always sets it)
    assert s.storage_secret is None
    assert s.trainer_image.startswith("ghcr.io/trtforge/trainer:")


def test_every_variable_is_read() -> None:
    env = {
        "TRTFORGE_WATCH_NAMESPACES": "ml, team-b ,",
        "TRTFORGE_TRAINER_IMAGE": "reg/t:1",
        "TRTFORGE_CONVERTER_IMAGE": "reg/c:1",
        "TRTFORGE_CONVERTER_TENSORRT_IMAGE": "reg/ct:1",
        "TRTFORGE_SERVER_IMAGE": "reg/s:1",
        "TRTFORGE_IMAGE_PULL_POLICY": "Always",
        "TRTFORGE_IMAGE_PULL_SECRETS": "regcred",
        "TRTFORGE_STORAGE_URI": "s3://bucket/prefix",
        "TRTFORGE_ARTIFACTS_MOUNT": "/data",
        "TRTFORGE_WORKER_LIMIT": "5",
        "TRTFORGE_HEALTH_PORT": "9000",
        "TRTFORGE_LEADER_ELECTION": "false",
        "TRTFORGE_LEASE_NAME": "forge",
        "POD_NAMESPACE": "trtforge-system",
        "POD_NAME": "forge-7d9f-abcde",
        "TRTFORGE_LEASE_DURATION_SECONDS": "30",
        "TRTFORGE_RENEW_DEADLINE_SECONDS": "20",
        "TRTFORGE_RETRY_PERIOD_SECONDS": "4",
        "TRTFORGE_KEEP_CONFIG_REVISIONS": "5",
        "TRTFORGE_WORKLOAD_SERVICE_ACCOUNT": "runner",
        "TRTFORGE_AUTOSCALER_ENABLED": "false",
        "TRTFORGE_AUTOSCALER_MODES": "keda",
        "TRTFORGE_STORAGE_SECRET": "s3-creds",
    }
    s = OperatorSettings.from_env(env)
    assert s.watch_namespaces == ("ml", "team-b")
    assert (s.trainer_image, s.converter_image, s.converter_tensorrt_image, s.server_image) == (
        "reg/t:1",
        "reg/c:1",
        "reg/ct:1",
        "reg/s:1",
    )
    assert s.image_pull_policy == "Always"
    assert s.image_pull_secrets == ("regcred",)
    assert s.storage_uri == "s3://bucket/prefix"
    assert s.artifacts_mount == "/data"
    assert (s.worker_limit, s.health_port) == (5, 9000)
    assert s.leader_election is False
    assert (s.lease_name, s.lease_namespace, s.pod_name) == ("forge", "trtforge-system", "forge-7d9f-abcde")
    assert (s.lease_duration_seconds, s.renew_deadline_seconds, s.retry_period_seconds) == (30, 20, 4)
    assert s.keep_config_revisions == 5
    assert s.workload_service_account == "runner"
    assert s.autoscaler_enabled is False
    assert s.autoscaler_modes == ("keda",)
    assert s.storage_secret == "s3-creds"
    assert not s.clusterwide


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TRTFORGE_WORKER_LIMIT", "many"),
        ("TRTFORGE_HEALTH_PORT", "70000"),
        ("TRTFORGE_IMAGE_PULL_POLICY", "Sometimes"),
        ("TRTFORGE_STORAGE_URI", "ftp://x/"),
        ("TRTFORGE_AUTOSCALER_ENABLED", "perhaps"),
    ],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(SettingsError, match=var):
        OperatorSettings.from_env({var: value})


def test_settings_are_not_read_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTFORGE_WORKER_LIMIT", "7")
    assert OperatorSettings.from_env().worker_limit == 7
    monkeypatch.setenv("TRTFORGE_WORKER_LIMIT", "9")
    assert OperatorSettings.from_env().worker_limit == 9


def test_autoscaler_modes() -> None:
    builtin_only = OperatorSettings.from_env({"TRTFORGE_AUTOSCALER_MODES": ""})
    assert builtin_only.autoscaler_modes == ()
    assert builtin_only.autoscaling_mode_problem("builtin") is None
    problem = builtin_only.autoscaling_mode_problem("hpa")
    assert problem is not None and "TRTFORGE_AUTOSCALER_MODES=''" in problem and "'hpa'" in problem
    both = OperatorSettings.from_env({"TRTFORGE_AUTOSCALER_MODES": " keda,hpa,keda "})
    assert both.autoscaler_modes == ("keda", "hpa")
    assert both.autoscaling_mode_problem("keda") is None
    off = OperatorSettings.from_env({"TRTFORGE_AUTOSCALER_MODES": "", "TRTFORGE_AUTOSCALER_ENABLED": "0"})
    assert off.autoscaling_mode_problem("keda") is None  # nothing autoscales: spec.serving.replicas applies
    with pytest.raises(SettingsError, match="TRTFORGE_AUTOSCALER_MODES='kpa'"):
        OperatorSettings.from_env({"TRTFORGE_AUTOSCALER_MODES": "kpa"})
    with pytest.raises(SettingsError, match="TRTFORGE_STORAGE_SECRET"):
        OperatorSettings.from_env({"TRTFORGE_STORAGE_SECRET": "Not_A_Name"})


def test_lease_timing_must_leave_the_old_leader_time_to_stop() -> None:
    with pytest.raises(SettingsError, match="TRTFORGE_RENEW_DEADLINE_SECONDS"):
        OperatorSettings.from_env({"TRTFORGE_RENEW_DEADLINE_SECONDS": "15"})
