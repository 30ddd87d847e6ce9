"""The cluster under test as the e2e tests see it, and the steps they run on it.

`Cluster` binds the kubernetes client, helm and kubectl to KUBECONFIG; the functions here render the
`helm install` command, adapt examples/digits.yaml to the cluster (CPU or GPU), wait for the operator,
collect diagnostics after a failure and tear a run down again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml
from e2e.e2elib import CHART, EXAMPLE, GROUP, MD_LABEL, PLURAL, VERSION, E2ESettings, Tool


@dataclass
class Cluster:
    """The cluster under test: API client, helm and kubectl bound to KUBECONFIG, and the run's settings."""

    settings: E2ESettings
    api: Any  # kubernetes.client.ApiClient
    kubectl: Tool
    helm: Tool

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def get_md(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            obj: dict[str, Any] = self.custom().get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def diagnose(self, name: str | None = None) -> str:
        """What an engineer would look at after a failure: objects, the CR's status, events, logs."""
        ns = self.namespace
        parts: list[str] = []

        def add(*args: str) -> None:
            proc = self.kubectl.run(*args, check=False, timeout=60)
            parts.append(f"$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")

        add("get", "md,jobs,deployments,services,pods,pvc", "-n", ns, "-o", "wide")
        if name:
            add("get", "md", name, "-n", ns, "-o", "jsonpath={.status}")
        add("get", "events", "-n", ns, "--sort-by=.lastTimestamp")
        add("logs", "-n", ns, "-l", "app.kubernetes.io/component=operator", "--tail=60", "--all-containers")
        if name:
            add("logs", "-n", ns, "-l", f"{MD_LABEL}={name}", "--tail=30", "--all-containers", "--prefix")
        return "\n".join(parts)


def helm_install_args(settings: E2ESettings) -> list[str]:
    """`helm install` of the chart with the run's images and a namespace of its own."""
    args = ["install", settings.release, str(CHART), "-n", settings.namespace, "--create-namespace"]
    images = {
        "image": "operator",
        "workloadImages.trainer": "trainer",
        "workloadImages.converter": "converter",
        "workloadImages.converterTensorrt": "converter-tensorrt",
        "workloadImages.server": "server",
    }
    for key, image in images.items():
        args += ["--set", f"{key}.repository={settings.image(image)}"]
        if settings.image_tag:
            args += ["--set-string", f"{key}.tag={settings.image_tag}"]
    args += ["--set", f"image.pullPolicy={settings.image_pull_policy}"]
    args += ["--set", f"workloadImages.pullPolicy={settings.image_pull_policy}"]
    args += ["--set", f"watchNamespaces={{{settings.namespace}}}"]
    args += ["--set", "replicas=2"]  # HA: one leader on the Lease, one standby (test_operator_replicas_...)
    if settings.apply_crd:  # the run applied the repository's CRD itself: the release must not own it
        args += ["--set", "crds.enabled=false"]
    return args + settings.helm_args


def operator_available(cluster: Cluster) -> bool | None:
    selector = f"app.kubernetes.io/instance={cluster.settings.release},app.kubernetes.io/component=operator"
    items = cluster.apps().list_namespaced_deployment(cluster.namespace, label_selector=selector).items
    ready = [d for d in items if (d.status.available_replicas or 0) >= (d.spec.replicas or 1)]
    return True if items and len(ready) == len(items) else None


def teardown(cluster: Cluster) -> None:
    """Delete ModelDeployments while the operator runs (its finalizer), then the release and namespace."""
    settings, ns = cluster.settings, cluster.namespace
    custom = cluster.custom()
    try:
        cluster.kubectl.run(
            "delete",
            "md",
            "--all",
            "-n",
            ns,
            "--wait=true",
            f"--timeout={int(settings.delete_timeout)}s",
            check=False,
            timeout=settings.delete_timeout + 30,
        )
        for md in custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]:
            # still there: the operator did not release it; drop finalizers so the namespace can go
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, md["metadata"]["name"], {"metadata": {"finalizers": None}}
            )
    finally:
        cluster.helm.run("uninstall", settings.release, "-n", ns, "--wait", check=False, timeout=300)
        cluster.kubectl.run(
            "delete",
            "namespace",
            ns,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=300s",
            check=False,
            timeout=330,
        )


def digits_manifest(settings: E2ESettings, gpu_capabilities: list[str]) -> dict[str, Any]:
    """examples/digits.yaml adapted to the cluster: CPU (gpus 0) or GPU, fixed replicas (scale test)."""
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    manifest = copy.deepcopy(manifest)
    manifest["metadata"] = {"name": settings.model_name, "namespace": settings.namespace}
    spec = manifest["spec"]
    train, engine, serving = spec["model"]["train"], spec["engine"], spec["serving"]
    if settings.epochs is not None:
        train["epochs"] = settings.epochs
    backend = settings.effective_backend(engine["backend"])
    engine["backend"] = backend
    if backend == "onnxruntime":
        engine.pop("computeCapabilities", None)
    elif backend == "tensorrt" or settings.compute_capabilities:
        engine["computeCapabilities"] = settings.compute_capabilities or gpu_capabilities
    gpus = 1 if settings.gpu else 0
    for section in (train, serving):
        section.setdefault("resources", {})["gpus"] = gpus
    # full TensorRT builds on the GPU it serves on; tensorrt-rtx and onnxruntime convert on CPU
    engine.setdefault("resources", {})["gpus"] = 1 if backend == "tensorrt" else 0
    serving["autoscaling"] = {"enabled": False}  # the scale test drives replicas through `kubectl scale`
    serving["replicas"] = 1
    return manifest


def node_compute_capabilities(cluster: Cluster) -> list[str]:
    """Compute capabilities of the GPU nodes, from GPU feature discovery's labels."""
    found: set[str] = set()
    for node in cluster.core().list_node(label_selector="nvidia.com/gpu.compute.major").items:
        node_labels = node.metadata.labels or {}
        major = node_labels["nvidia.com/gpu.compute.major"]
        found.add(f"{major}.{node_labels.get('nvidia.com/gpu.compute.minor', '0')}")
    return sorted(found)
