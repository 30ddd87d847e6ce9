"""RBAC for requests made as a ServiceAccount (token `serviceaccount:<ns>:<name>`); admin otherwise."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kube_emulator.helpers import KUBECTL, Kube
from kubernetes import client
from kubernetes.client.exceptions import ApiException

SA = ("ops", "operator")


def _setup(kube: Kube) -> None:
    kube.create_namespace("ops")
    kube.create_namespace("other")
    kube.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator", "namespace": "ops"}}
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "cm-reader", "namespace": "ops"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            ],
        }
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "cm-reader", "namespace": "ops"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": "ops"}],
        }
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "md-editor"},
            "rules": [
                {
                    "apiGroups": ["trtforge.dev"],
                    "resources": ["modeldeployments", "modeldeployments/status"],
                    "verbs": ["*"],
                }
            ],
        }
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "md-editor"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "md-editor"},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": "ops"}],
        }
    )


def test_role_and_cluster_role_bindings_are_enforced(kube: Kube) -> None:
    _setup(kube)
    api = kube.client(service_account=SA)
    core = client.CoreV1Api(api)
    assert core.list_namespaced_config_map("ops").items == []
    with pytest.raises(ApiException) as info:
        core.list_namespaced_config_map("other")
    assert info.value.status == 403
    assert json.loads(info.value.body)["message"] == (
        'configmaps is forbidden: User "system:serviceaccount:ops:operator" cannot list resource '
        '"configmaps" in API group "" in the namespace "other"'
    )
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("ops", {"metadata": {"name": "x"}})
    assert info.value.status == 403
    with pytest.raises(ApiException) as info:
        client.BatchV1Api(api).list_job_for_all_namespaces()
    assert "at the cluster scope" in json.loads(info.value.body)["message"]
    co = client.CustomObjectsApi(api)
    assert co.list_cluster_custom_object("trtforge.dev", "v1alpha1", "modeldeployments")["items"] == []
    api.close()


def test_subresources_need_their_own_rules(kube: Kube) -> None:
    _setup(kube)
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ops"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }
    )
    kube.set_pod_log("ops", "p", "hello\n")
    api = kube.client(service_account=SA)
    core = client.CoreV1Api(api)
    assert core.read_namespaced_pod_log("p", "ops") == "hello\n"  # pods/log is granted
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("p", "ops")  # pods is not
    assert info.value.status == 403
    api.close()


def test_admin_token_is_unrestricted(kube: Kube, api: Any) -> None:
    assert client.CoreV1Api(api).list_namespaced_secret("kube-system").items == []


@pytest.mark.skipif(not KUBECTL.exists(), reason=f"kubectl not installed at {KUBECTL}")
def test_kubectl_auth_as_a_service_account(kube: Kube, tmp_path: Any) -> None:
    _setup(kube)
    config = kube.write_kubeconfig(tmp_path / "sa-kubeconfig", "ops", service_account=SA)
    proc = kube.kubectl("--kubeconfig", str(config), "get", "secrets", check=False)
    assert proc.returncode != 0 and 'cannot list resource "secrets"' in proc.stderr
    assert kube.kubectl("--kubeconfig", str(config), "get", "configmaps", check=False).returncode == 0


@pytest.mark.skipif(not KUBECTL.exists(), reason=f"kubectl not installed at {KUBECTL}")
def test_kubectl_auth_can_i(kube: Kube) -> None:
    _setup(kube)
    sa = "--as=system:serviceaccount:ops:operator"
    assert kube.kubectl("auth", "can-i", "list", "configmaps", "-n", "ops", sa).stdout.strip() == "yes"
    proc = kube.kubectl("auth", "can-i", "list", "secrets", "-n", "ops", sa, check=False)
    assert proc.stdout.strip() == "no" and proc.returncode == 1
    assert (
        kube.kubectl("auth", "can-i", "get", "pods", "--subresource=log", "-n", "ops", sa).stdout.strip()
        == "yes"
    )
    assert (
        kube.kubectl(
            "auth", "can-i", "patch", "modeldeployments.trtforge.dev/status", "-A", sa
        ).stdout.strip()
        == "yes"
    )
    assert kube.kubectl("auth", "can-i", "delete", "namespaces").stdout.strip() == "yes"  # the admin


def test_subject_access_review(kube: Kube, api: Any) -> None:
    _setup(kube)
    review = {
        "spec": {
            "user": "system:serviceaccount:ops:operator",
            "resourceAttributes": {"namespace": "ops", "verb": "watch", "resource": "configmaps"},
        }
    }
    result = client.AuthorizationV1Api(api).create_subject_access_review(review)
    assert result.status.allowed is True
    review["spec"]["resourceAttributes"]["namespace"] = "other"
    assert client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed is False
