"""Serving pods outlive their endpoints: shutdown delay, drain and grace period on the generated manifest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from trtforge_operator.reconcilers import deployment
from trtforge_runtime.serve.settings import ServeSettings


def env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}


def test_grace_period_covers_delay_and_drain(
    make_plan: Callable[..., Any], make_spec: Callable[..., Any]
) -> None:
    plan = make_plan(make_spec(**{"serving.requestTimeoutSeconds": 12.5, "serving.resources": {"cpu": "3"}}))
    pod = deployment.pod_template(plan)["spec"]
    values = env(pod)
    delay = float(values["TRTFORGE_SHUTDOWN_DELAY_SECONDS"])
    drain = float(values["TRTFORGE_DRAIN_TIMEOUT_SECONDS"])
    assert delay >= 5 and drain >= 12.5  # a request admitted just before the drain may take its timeout
    assert pod["terminationGracePeriodSeconds"] >= delay + drain + 5
    assert values["TRTFORGE_WORKERS"] == "3"
    # the runtime accepts exactly these variables (typed settings, same names)
    settings = ServeSettings.from_sources(None, env={**values, "TRTFORGE_ENGINE_DIR": "/e"})
    assert settings.shutdown_delay_seconds == delay and settings.drain_timeout_seconds == drain
    assert settings.workers == 3


@pytest.mark.parametrize(
    ("cpu", "workers"), [("500m", 1), ("1", 1), ("1500m", 1), ("2", 2), (4, 4), ("8.0", 8)]
)
def test_one_worker_per_whole_cpu(cpu: str | int, workers: int) -> None:
    assert deployment.cpu_workers(cpu) == workers
