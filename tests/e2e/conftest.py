"""Fixtures of the real-cluster e2e tests: skip without a reachable cluster, install the chart, apply digits.

Every test in this folder is marked `e2e`. At collection they are all skipped, with the reason shown by
`pytest -rs`, when KUBECONFIG is unset or its cluster does not answer within TRTFORGE_E2E_CONNECT_TIMEOUT
seconds, or when helm/kubectl are missing. Otherwise one session installs the chart into a fresh namespace,
applies the digits example (a CPU or GPU variant) and tears everything down again, also after a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e.cluster import (
    Cluster,
    digits_manifest,
    helm_install_args,
    node_compute_capabilities,
    operator_available,
    teardown,
)
from e2e.e2elib import (
    CRD,
    E2EConfigError,
    E2ESettings,
    Tool,
    find_tool,
    get_path,
    probe_cluster,
    tool_env,
    wait_for,
)

HERE = Path(__file__).resolve().parent
SKIP_KEY = pytest.StashKey[str | None]()


def _skip_reason() -> str | None:
    try:
        settings = E2ESettings.from_env()
    except E2EConfigError as exc:
        return f"e2e settings: {exc}"
    if not settings.kubeconfig:
        return "KUBECONFIG is not set: the e2e tests need a real cluster (see docs/e2e.md)"
    missing = [name for name in ("helm", "kubectl") if find_tool(name) is None]
    if missing:
        return (
            f"{' and '.join(missing)} not found in .tools/bin or on PATH (bash scripts/tools.sh fetches them)"
        )
    return probe_cluster(settings.kubeconfig, settings.connect_timeout)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    if not ours:
        return
    if SKIP_KEY not in config.stash:
        config.stash[SKIP_KEY] = _skip_reason()  # one probe per session
    reason = config.stash[SKIP_KEY]
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def e2e_settings() -> E2ESettings:
    return E2ESettings.from_env()


@pytest.fixture(scope="session")
def cluster(e2e_settings: E2ESettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from kubernetes import config

    api = config.new_client_from_config(config_file=e2e_settings.kubeconfig)
    env = tool_env(tmp_path_factory.mktemp("helm-home"), e2e_settings.kubeconfig)
    helm, kubectl = find_tool("helm"), find_tool("kubectl")
    assert helm and kubectl, "checked at collection"
    yield Cluster(e2e_settings, api, Tool(kubectl, env), Tool(helm, env))
    api.close()


@pytest.fixture(scope="session")
def release(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """The chart installed into a fresh namespace; uninstalled and the namespace deleted afterwards."""
    settings = cluster.settings
    # Apply the repository's CRD (the release then leaves it alone, crds.enabled=false): a CRD kept from
    # another release would otherwise block the install, and an old one would be tested.
    if settings.apply_crd:
        cluster.kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    try:
        cluster.helm.run(*helm_install_args(settings), timeout=settings.install_timeout)
        wait_for(
            "the operator Deployment to become available",
            lambda: operator_available(cluster),
            settings.install_timeout,
            describe=cluster.diagnose,
        )
        yield settings.release
    finally:
        failed = request.session.testsfailed > 0
        if failed and settings.keep_on_failure:
            print(f"\nTRTFORGE_E2E_KEEP_ON_FAILURE: kept namespace {settings.namespace}")
        else:
            teardown(cluster)


@pytest.fixture(scope="session")
def model_deployment(cluster: Cluster, release: str) -> Iterator[dict[str, Any]]:
    """The digits ModelDeployment applied with kubectl and Ready; deleted afterwards if a test left it."""
    settings = cluster.settings
    capabilities: list[str] = []
    if settings.gpu and not settings.compute_capabilities:
        capabilities = node_compute_capabilities(cluster)
        if not capabilities:
            pytest.fail(
                "TRTFORGE_E2E_GPU is set but no node has the nvidia.com/gpu.compute.major label (install GPU "
                "feature discovery) and TRTFORGE_E2E_COMPUTE_CAPABILITIES is empty"
            )
    manifest = digits_manifest(settings, capabilities)
    name = settings.model_name
    cluster.kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def ready() -> dict[str, Any] | None:
        md = cluster.get_md(name)
        phase = get_path(md, "status", "phase")
        if phase == "Failed":
            conditions = get_path(md, "status", "conditions") or []
            raise AssertionError(f"ModelDeployment {name} failed: {conditions}\n{cluster.diagnose(name)}")
        if phase == "Ready" and (get_path(md, "status", "serving", "readyReplicas") or 0) >= 1:
            return md
        return None

    md = wait_for(
        f"ModelDeployment {name} to become Ready",
        ready,
        settings.ready_timeout,
        interval=5,
        describe=lambda: cluster.diagnose(name),
    )
    yield md
    if cluster.get_md(name) is not None:
        cluster.kubectl.run(
            "delete",
            "md",
            name,
            "-n",
            cluster.namespace,
            "--wait=true",
            f"--timeout={int(settings.delete_timeout)}s",
            check=False,
            timeout=settings.delete_timeout + 30,
        )
