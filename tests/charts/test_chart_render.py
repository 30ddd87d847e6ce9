"""The chart lints and renders, with the default values and every value set in tests/charts/values/,
into objects that validate offline and carry the operator settings each value set asks for."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from charts.chartlib import (
    REPO,
    Helm,
    by_kind,
    env_of,
    validate_objects,
    value_sets,
)

SETS = [None, *value_sets()]
IDS = ["default", *(p.stem for p in value_sets())]


def test_value_sets_exist() -> None:
    names = {p.stem for p in value_sets()}
    assert {"namespaced", "ha", "hpa", "keda", "existing-pvc", "s3"} <= names


@pytest.mark.parametrize("values", SETS, ids=IDS)
def test_lint(helm: Helm, values: Path | None) -> None:
    args = ["lint", "--strict", str(REPO / "charts" / "trtforge")]
    if values:
        args += ["-f", str(values)]
    proc = helm.run(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("values", SETS, ids=IDS)
def test_rendered_objects_validate_offline(helm: Helm, values: Path | None) -> None:
    docs = helm.template(*([values] if values else []))
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole"} <= kinds
    assert validate_objects(docs) == []


def test_validation_catches_errors(helm: Helm) -> None:
    """The offline validation is not a no-op: broken built-in and custom objects are reported."""
    docs = helm.template()
    deployment = by_kind(docs, "Deployment")[0]
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    deployment["spec"]["replicas"] = "one"
    crd = by_kind(docs, "CustomResourceDefinition")
    md = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    md["spec"]["engine"]["precision"] = "fp13"
    unknown = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    errors = validate_objects([typo, deployment, md, unknown], extra_crds=crd)
    text = "\n".join(errors)
    assert "imagePullPolcy" in text
    assert "replicas" in text
    assert "precision" in text and "fp13" in text
    assert "Gadget" in text and "no schema" in text


def test_examples_validate_against_the_chart_crd(helm: Helm) -> None:
    crds = by_kind(helm.template(), "CustomResourceDefinition")
    examples = sorted((REPO / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert validate_objects(docs, extra_crds=crds) == [], path


def test_default_operator_deployment(helm: Helm) -> None:
    docs = helm.template()
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/trtforge/operator:0.1.0"
    assert container["args"] == ["--log-level", "INFO", "operator"]
    assert deployment["spec"]["replicas"] == 1
    # leader election: a rolling update is safe with any replica count (the new pod stands by)
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    env = env_of(deployment)
    assert env == {
        "TRTFORGE_WATCH_NAMESPACES": "",
        "TRTFORGE_TRAINER_IMAGE": "ghcr.io/trtforge/trainer:0.1.0",
        "TRTFORGE_CONVERTER_IMAGE": "ghcr.io/trtforge/converter:0.1.0",
        "TRTFORGE_CONVERTER_TENSORRT_IMAGE": "ghcr.io/trtforge/converter-tensorrt:0.1.0",
        "TRTFORGE_SERVER_IMAGE": "ghcr.io/trtforge/server:0.1.0",
        "TRTFORGE_IMAGE_PULL_POLICY": "IfNotPresent",
        "TRTFORGE_IMAGE_PULL_SECRETS": "",
        "TRTFORGE_STORAGE_URI": "pvc://trtforge-artifacts/",
        "TRTFORGE_ARTIFACTS_MOUNT": "/artifacts",
        "TRTFORGE_CLAIM_CREATE": "true",
        "TRTFORGE_CLAIM_SIZE": "20Gi",
        "TRTFORGE_CLAIM_ACCESS_MODE": "ReadWriteOnce",
        "TRTFORGE_CLAIM_STORAGE_CLASS": "",
        "TRTFORGE_CLAIM_ANNOTATIONS": "{}",
        "TRTFORGE_WORKER_LIMIT": "20",
        "TRTFORGE_HEALTH_PORT": "8090",
        "TRTFORGE_LEADER_ELECTION": "true",
        "TRTFORGE_LEASE_NAME": "forge-trtforge",
        "TRTFORGE_LEASE_DURATION_SECONDS": "15",
        "TRTFORGE_RENEW_DEADLINE_SECONDS": "10",
        "TRTFORGE_RETRY_PERIOD_SECONDS": "2",
        "TRTFORGE_WORKLOAD_SERVICE_ACCOUNT": "default",
        "TRTFORGE_AUTOSCALER_ENABLED": "true",
        "TRTFORGE_AUTOSCALER_MODES": "hpa",
        "TRTFORGE_PROMETHEUS_URL": "http://prometheus-operated.monitoring.svc:9090",
        "TRTFORGE_AUTOSCALER_SCRAPE_TIMEOUT": "1",
        "TRTFORGE_RESYNC_SECONDS": "120",
        "TRTFORGE_JOB_TTL_SECONDS": "86400",
    }
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    # readiness says leader or standby, and a standby is ready (a rolling update waits for it)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    (port,) = [p for p in container["ports"] if p["name"] == probe["port"]]
    assert port["containerPort"] == 8090
    assert container["resources"]["limits"]["memory"] == "512Mi"
    assert pod["serviceAccountName"] == "forge-trtforge"
    # the operator creates the artifact claim in each ModelDeployment's namespace, not the chart in its own
    assert not by_kind(docs, "PersistentVolumeClaim")
    assert not by_kind(docs, "PodDisruptionBudget")
    assert not [d for d in docs if d["apiVersion"].startswith("kopf.dev")]
    crd_names = {d["metadata"]["name"] for d in by_kind(docs, "CustomResourceDefinition")}
    assert not {n for n in crd_names if n.endswith(".kopf.dev")}  # no kopf peering any more


def test_operator_settings_read_the_rendered_env(helm: Helm) -> None:
    """Contract: the operator's settings model reads every TRTFORGE_* variable the chart sets, and the
    values it ends up with are the chart's (nothing silently ignored or defaulted)."""
    from trtforge_operator.settings import ENV_VARS, OperatorSettings

    known = set(ENV_VARS.values())
    for values in SETS:
        (deployment,) = by_kind(helm.template(*([values] if values else [])), "Deployment")
        env = {k: v for k, v in env_of(deployment).items() if k.startswith("TRTFORGE_")}
        assert set(env) <= known, f"{values}: the operator does not read {sorted(set(env) - known)}"
        settings = OperatorSettings.from_env(env)
        for field, var in ENV_VARS.items():
            if var not in env:
                continue
            got = getattr(settings, field)
            want = env[var]
            if isinstance(got, tuple):
                assert ",".join(got) == want, (values, var)
            elif isinstance(got, bool):
                assert str(got).lower() == want, (values, var)
            elif isinstance(got, int | float):
                assert got == float(want), (values, var)
            elif isinstance(got, dict):
                assert got == json.loads(want), (values, var)
            else:
                assert got == want, (values, var)


def test_ha(helm: Helm) -> None:
    docs = helm.template(REPO / "tests/charts/values/ha.yaml")
    (deployment,) = by_kind(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    env = env_of(deployment)
    assert env["TRTFORGE_LEADER_ELECTION"] == "true" and env["TRTFORGE_LEASE_NAME"] == "forge-trtforge"
    names = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert names["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert names["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    pod = spec["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "podAntiAffinity" in pod["affinity"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane-workers": "true"}
    image = pod["containers"][0]["image"]
    assert re.fullmatch(r"ghcr.io/trtforge/operator@sha256:[0-9a-f]{64}", image)


def test_ha_namespaced_lease_settings(helm: Helm) -> None:
    docs = helm.template(REPO / "tests/charts/values/ha-namespaced.yaml")
    env = env_of(by_kind(docs, "Deployment")[0])
    assert env["TRTFORGE_LEASE_NAME"] == "forge-leader"
    assert (env["TRTFORGE_LEASE_DURATION_SECONDS"], env["TRTFORGE_RENEW_DEADLINE_SECONDS"]) == ("30", "20")
    (role,) = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == "trtforge-system"  # the Lease lives with the operator


def test_namespaced(helm: Helm) -> None:
    docs = helm.template(REPO / "tests/charts/values/namespaced.yaml")
    env = env_of(by_kind(docs, "Deployment")[0])
    assert env["TRTFORGE_WATCH_NAMESPACES"] == "ml-prod,ml-staging"
    assert not by_kind(docs, "PersistentVolumeClaim")
    assert env["TRTFORGE_CLAIM_CREATE"] == "true"
    assert env["TRTFORGE_CLAIM_ACCESS_MODE"] == "ReadWriteMany"
    assert env["TRTFORGE_CLAIM_STORAGE_CLASS"] == "efs-sc"
    assert env["TRTFORGE_CLAIM_SIZE"] == "100Gi"
    assert env["TRTFORGE_CLAIM_ANNOTATIONS"] == '{"backup.example.com/enabled":"true"}'


def test_private_registry_images(helm: Helm) -> None:
    docs = helm.template(REPO / "tests/charts/values/hpa.yaml")
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    env = env_of(deployment)
    assert env["TRTFORGE_IMAGE_PULL_SECRETS"] == "regcred"
    assert env["TRTFORGE_IMAGE_PULL_POLICY"] == "Always"
    assert (
        env["TRTFORGE_CONVERTER_TENSORRT_IMAGE"]
        == "registry.example.com/ml/trtforge-converter-tensorrt:0.1.0"
    )


def test_existing_claim(helm: Helm) -> None:
    docs = helm.template(REPO / "tests/charts/values/existing-pvc.yaml")
    assert not by_kind(docs, "PersistentVolumeClaim")
    env = env_of(by_kind(docs, "Deployment")[0])
    assert env["TRTFORGE_STORAGE_URI"] == "pvc://shared-models/"
    assert env["TRTFORGE_CLAIM_CREATE"] == "false"  # the platform's claim: used, never created
    assert env["TRTFORGE_ARTIFACTS_MOUNT"] == "/data"
    assert env["TRTFORGE_WORKLOAD_SERVICE_ACCOUNT"] == "trtforge-workload"


def test_s3_storage(helm: Helm) -> None:
    docs = helm.template(REPO / "tests/charts/values/s3.yaml")
    assert not by_kind(docs, "PersistentVolumeClaim")
    env = env_of(by_kind(docs, "Deployment")[0])
    assert env["TRTFORGE_STORAGE_URI"] == "s3://ml-artifacts/trtforge/"
    assert env["TRTFORGE_STORAGE_SECRET"] == "trtforge-s3"
    assert env["TRTFORGE_CLAIM_CREATE"] == "false"


def test_claim_creation_off_expects_the_claim(helm: Helm) -> None:
    docs = helm.template(sets=["storage.pvc.create=false"])
    env = env_of(by_kind(docs, "Deployment")[0])
    assert env["TRTFORGE_STORAGE_URI"] == "pvc://trtforge-artifacts/"
    assert env["TRTFORGE_CLAIM_CREATE"] == "false"


@pytest.mark.parametrize("values", SETS, ids=IDS)
def test_names_and_labels(helm: Helm, values: Path | None) -> None:
    long = "x" * 80
    for docs in (
        helm.template(*([values] if values else [])),
        helm.template(*([values] if values else []), sets=[f"fullnameOverride={long}"]),
        helm.template(*([values] if values else []), release="r" * 53),
    ):
        for doc in docs:
            name = doc["metadata"]["name"]
            assert len(name) <= 63 or doc["kind"] == "CustomResourceDefinition", name
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), name
            if doc["kind"] == "CustomResourceDefinition":
                continue
            labels = doc["metadata"]["labels"]
            assert labels["app.kubernetes.io/part-of"] == "trtforge"
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert all(len(v) <= 63 for v in labels.values()), labels


def test_notes(helm: Helm) -> None:
    proc = helm.run(
        "install",
        "forge",
        str(REPO / "charts" / "trtforge"),
        "--dry-run=client",
        "--namespace",
        "trtforge-system",
    )
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    # every command works in the namespace the example goes to (the operator creates its claim there)
    assert "kubectl apply -n default -f" in notes and "kubectl get md -n default -w" in notes
    assert "kubectl port-forward -n default svc/digits" in notes
    assert "the operator creates the claim trtforge-artifacts" in notes
    assert "examples/digits.yaml" in notes
    assert "pvc://trtforge-artifacts/" in notes
    assert "/v2/models/digits/infer" in notes
