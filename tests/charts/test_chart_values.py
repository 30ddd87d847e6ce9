"""values.yaml, values.schema.json and the chart's CRD copy are generated from one source and in sync;
helm refuses invalid values with the schema's message."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from charts.chartlib import CHART, REPO, Helm

SCRIPT = REPO / "scripts" / "chart_values.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_values", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["chart_values"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_in_sync() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_crd_is_the_repository_crd(helm: Helm) -> None:
    """The chart's CRD template renders to the repository's CRD (only metadata differs): no second copy."""
    source = yaml.safe_load((REPO / "crds" / "modeldeployments.trtforge.dev.yaml").read_text())
    (crd,) = [d for d in helm.template(include_crds=False) if d["kind"] == "CustomResourceDefinition"]
    assert crd["spec"] == source["spec"]
    assert crd["metadata"]["name"] == source["metadata"]["name"]
    assert not list((CHART / "crds").glob("*"))  # nothing Helm would install once and never upgrade


def test_check_detects_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    gen = load_generator()
    chart = tmp_path / "charts" / "trtforge"
    shutil.copytree(CHART, chart)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    monkeypatch.setattr(gen, "CHART", chart)
    monkeypatch.setattr(gen, "CRD_COPY", chart / "templates" / "crds" / gen.CRD_SOURCE.name)
    assert gen.main(["--check"]) == 0
    (chart / "templates" / "crds" / gen.CRD_SOURCE.name).write_text("# edited by hand\n")
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("workerLimit: 20", "workerLimit: 30"))
    assert gen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "values.yaml" in err and "modeldeployments.trtforge.dev.yaml" in err
    assert gen.main(["--write"]) == 0
    assert gen.main(["--check"]) == 0


def test_values_yaml_matches_the_model_defaults() -> None:
    gen = load_generator()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values == gen.ChartValues().model_dump(by_alias=True)


def test_every_key_is_documented() -> None:
    """Every value has a description; every leaf a default and an example; values.yaml shows them all."""
    from pydantic import BaseModel

    gen = load_generator()
    text = (CHART / "values.yaml").read_text()
    seen = 0

    def walk(model: type[BaseModel], path: str) -> None:
        nonlocal seen
        for name, info in model.model_fields.items():
            key = f"{path}{info.alias or name}"
            assert info.description and len(info.description) > 10, key
            first_words = " ".join(info.description.split()[:4])
            assert first_words in " ".join(text.replace("#", " ").split()), key
            default = info.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                walk(type(default), key + ".")
            else:
                seen += 1
                assert info.examples, f"{key} has no example"

    walk(gen.ChartValues, "")
    assert seen > 40
    assert text.count("# Default:") == seen and text.count("# Example:") == seen


def test_schema_refuses_unknown_keys_everywhere() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = 0

    def walk(node: Any, where: str) -> None:
        nonlocal objects
        if isinstance(node, dict):
            if "properties" in node:
                objects += 1
                assert node.get("additionalProperties") is False, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(schema, "")
    assert objects >= 10
    assert schema["properties"]["replicas"]["minimum"] == 0


INVALID = [
    (["replicas=-1"], "at '/replicas': minimum: got -1, want 0"),
    (["replicas=two"], "at '/replicas': got string, want integer"),
    (["workerLimit=0"], "at '/workerLimit': minimum"),
    (["healthPort=true"], "at '/healthPort': got boolean, want integer"),
    (["replicaCount=2"], "additional properties 'replicaCount' not allowed"),
    (["image.tga=1.0"], "at '/image': additional properties 'tga' not allowed"),
    (["storage.pvc.accessMode=ReadWriteSometimes"], "at '/storage/pvc/accessMode'"),
    (["storage.pvc.size=lots"], "at '/storage/pvc/size'"),
    (["storage.uri=http://bucket/x"], "at '/storage/uri'"),
    (["watchNamespaces={Team_A}"], "at '/watchNamespaces/0'"),
    (["image.digest=sha256:abc"], "at '/image/digest'"),
    (["logLevel=LOUD"], "at '/logLevel'"),
    (["autoscaler.keda=yes"], "at '/autoscaler/keda': got string, want boolean"),
]


@pytest.mark.parametrize(("sets", "message"), INVALID, ids=[s[0][0] for s in INVALID])
def test_invalid_values_are_refused(helm: Helm, sets: list[str], message: str) -> None:
    proc = helm.run(*helm.template_args(sets=sets))
    assert proc.returncode != 0, proc.stdout[:500]
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert message in proc.stderr, proc.stderr


def test_invalid_values_file_is_refused(helm: Helm, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("replicas: -3\nstorage:\n  pvc:\n    sise: 10Gi\n")
    proc = helm.run("lint", str(CHART), "-f", str(bad))
    assert proc.returncode != 0
    assert "minimum: got -3, want 0" in proc.stdout + proc.stderr
    assert "additional properties 'sise' not allowed" in proc.stdout + proc.stderr


class Yaml11Loader(yaml.SafeLoader):
    """Reads scalars as YAML 1.1 does (Go's yaml.v2, behind kubectl): `y`, `n`, `on`... are booleans."""

    bool_values = {**yaml.SafeLoader.bool_values, "y": True, "n": False}


Yaml11Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:y|Y|n|N|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
    list("yYnNtTfFoO"),
)


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a for d in _differences(a[k], b.get(k), f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=False)) for d in _differences(x, y, f"{where}/{i}")
        ]
    return [] if a == b and type(a) is type(b) else [f"{where}: {a!r} reads as {b!r} in YAML 1.1"]


def test_yaml_means_the_same_to_kubectl(helm: Helm) -> None:
    """A string such as `y` written unquoted turns into `true` for kubectl (YAML 1.1): the chart's files
    and rendered manifests must read the same either way."""
    assert _differences({"a": "y"}, yaml.load("a: y", Loader=Yaml11Loader))
    texts = {
        p.name: p.read_text()
        for p in [REPO / "crds" / "modeldeployments.trtforge.dev.yaml", CHART / "values.yaml"]
    }
    rendered = helm.run(*helm.template_args())
    assert rendered.returncode == 0, rendered.stderr
    texts["helm template"] = rendered.stdout
    problems = []
    for name, text in texts.items():
        plain = list(yaml.safe_load_all(text))
        yaml11 = list(yaml.load_all(text, Loader=Yaml11Loader))
        problems += [f"{name}{d}" for d in _differences(plain, yaml11)]
    assert problems == []
