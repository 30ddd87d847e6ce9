"""The CRD is generated from the spec models; the checked-in copy must match and accept the example."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml
from trtforge_runtime.spec import crd


def test_checked_in_crd_is_current(repo_root: Path) -> None:
    assert (repo_root / crd.CRD_PATH).read_text() == crd.render(), (
        "run python -m trtforge_runtime.spec.crd --write"
    )


def _walk(node: object, path: str = ""):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield path, node
        for key, value in node.get("properties", {}).items():
            yield from _walk(value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural_and_described() -> None:
    schema = crd.spec_openapi_schema()
    for path, node in _walk(schema["properties"]["spec"], "spec"):
        assert "$ref" not in node and "anyOf" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if not path.endswith("[]") and not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description"


def test_exclusive_bounds_are_openapi_v3_booleans() -> None:
    for path, node in _walk(crd.spec_openapi_schema()["properties"]["spec"], "spec"):
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node:
                assert node[key] is True, path
                assert ("minimum" if key == "exclusiveMinimum" else "maximum") in node, path


def test_cross_field_rules_are_cel() -> None:
    text = crd.render()
    for rule in (
        "has(self.train) != has(self.source)",
        "self.min <= self.opt && self.opt <= self.max",
        "self.minReplicas <= self.maxReplicas",
    ):
        assert rule in text


def test_example_validates_against_crd_schema(digits_manifest: Path) -> None:
    doc = yaml.safe_load(digits_manifest.read_text())
    # OpenAPI v3.0 (Kubernetes) uses boolean exclusiveMinimum/Maximum, as JSON Schema draft 4 does
    jsonschema.Draft4Validator(crd.spec_openapi_schema()["properties"]["spec"]).validate(doc["spec"])


def test_crd_schema_rejects_bad_values(digits_manifest: Path) -> None:
    doc = yaml.safe_load(digits_manifest.read_text())
    doc["spec"]["model"]["train"]["epochs"] = 0
    try:
        jsonschema.Draft4Validator(crd.spec_openapi_schema()["properties"]["spec"]).validate(doc["spec"])
    except jsonschema.ValidationError as exc:
        assert list(exc.absolute_path) == ["model", "train", "epochs"]
    else:  # pragma: no cover - the assertion is the point
        raise AssertionError("epochs: 0 was accepted")
