"""The CRD is a chart template (cert-manager's way): `helm upgrade` upgrades it, `crds.enabled` turns it
off, `crds.keep` keeps it (and every ModelDeployment) on uninstall. Helm never upgrades a chart's crds/:
with the CRD there, an upgrade that adds a field left the old schema and the API server pruned the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from charts.chartlib import REPO, Helm, by_kind

CRD_FILE = REPO / "crds" / "modeldeployments.trtforge.dev.yaml"


def _crd(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    crds = by_kind(docs, "CustomResourceDefinition")
    return crds[0] if crds else None


def test_an_upgrade_renders_the_crd(helm: Helm) -> None:
    """`helm upgrade` applies what `helm template` renders without --include-crds: the CRD must be there."""
    crd = _crd(helm.template(include_crds=False))
    assert crd is not None
    assert crd["spec"] == yaml.safe_load(CRD_FILE.read_text())["spec"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crds_can_be_left_out_or_not_kept(helm: Helm) -> None:
    assert _crd(helm.template(sets=["crds.enabled=false"])) is None
    crd = _crd(helm.template(sets=["crds.keep=false"]))
    assert crd is not None and "annotations" not in crd["metadata"]


@pytest.fixture
def emulator(tmp_path: Path) -> Any:
    from kube_emulator.fixtures import start_kube

    thread, kube = start_kube(tmp_path, install_crd=False)
    yield kube
    thread.stop()


def _without(crd: dict[str, Any], field: str) -> dict[str, Any]:
    """The CRD as an older chart had it: spec.<field> unknown to the schema."""
    old = copy.deepcopy(crd)
    spec = old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"][field]
    return old


def test_upgrading_the_release_upgrades_the_schema(helm: Helm, emulator: Any, tmp_path: Path) -> None:
    """Install an old chart (its CRD lacks spec.placement), upgrade to this one: a ModelDeployment then
    keeps spec.placement. `kubectl apply` of the rendered release stands in for helm's apply of it."""
    new = _crd(helm.template(include_crds=False))
    assert new is not None
    emulator.install_crd(_without(new, "placement"))
    md = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    md["spec"]["placement"] = {"nodeSelector": {"pool": "gpu"}}
    emulator.create_namespace("ml")
    emulator.create(copy.deepcopy(md), "ml")
    assert "placement" not in emulator.get("trtforge.dev/v1alpha1", "ModelDeployment", "digits", "ml")["spec"]

    rendered = tmp_path / "upgrade.json"
    rendered.write_text(json.dumps(new))
    emulator.kubectl("apply", "--validate=false", "-f", str(rendered))
    md["metadata"]["name"] = "digits-after"
    emulator.create(md, "ml")
    after = emulator.get("trtforge.dev/v1alpha1", "ModelDeployment", "digits-after", "ml")
    assert after["spec"]["placement"]["nodeSelector"] == {"pool": "gpu"}
