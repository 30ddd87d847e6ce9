"""Generates the ModelDeployment CRD from the typed models (the single source of truth).

    python -m trtforge_runtime.spec.crd --write    # regenerate crds/modeldeployments.trtforge.dev.yaml
    python -m trtforge_runtime.spec.crd --check    # exit 1 when the checked-in file is stale

pydantic's JSON schema is turned into a Kubernetes *structural* schema: `$ref`s inlined, optional fields
(`anyOf [X, null]`) flattened to X, titles dropped, `x-kubernetes-int-or-string` for quantities, and each
model's rules (`rules`, spec/rules.py, and `cel_rules`) emitted as `x-kubernetes-validations`; the rules on
metadata.name go on the root schema, the one place CEL may read it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from trtforge_runtime.spec import model as m

CRD_PATH = Path("crds") / f"{m.PLURAL}.{m.GROUP}.yaml"
_DROP = {"title", "discriminator"}


def _cel_by_title() -> dict[str, list[dict[str, str]]]:
    """Model class name -> CEL rules, for every model reachable from the spec."""
    out: dict[str, list[dict[str, str]]] = {}
    for obj in vars(m).values():
        if isinstance(obj, type) and issubclass(obj, m.Model):
            found = [r.crd() for r in obj.__dict__.get("rules", ())] + list(obj.__dict__.get("cel_rules", []))
            if found:
                out[obj.__name__] = found
    return out


def _structural(node: Any, defs: dict[str, Any], cel: dict[str, list[dict[str, str]]]) -> Any:
    if isinstance(node, list):
        return [_structural(x, defs, cel) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        target = dict(defs[name])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)
        return _structural(target, defs, cel)
    node = dict(node)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if node.get("x-kubernetes-int-or-string"):
            node = rest
            node.pop("type", None)
        elif len(options) == 1:
            merged = dict(_structural(options[0], defs, cel))
            merged.update(rest)
            node = merged
        else:
            raise ValueError(f"cannot express anyOf {options} structurally")
    title = node.get("title")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default" and value is None:
            continue
        if key == "additionalProperties" and value is False:
            continue  # structural schemas prune unknown fields instead; `false` is not allowed
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020-12 (pydantic) -> OpenAPI v3.0 (Kubernetes): a bound plus a boolean flag
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs, cel) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs, cel)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        # a pattern on an int-or-string only constrains strings; Kubernetes accepts it there
    if "properties" in out:
        out.setdefault("type", "object")
        if title in cel and "x-kubernetes-validations" not in out:
            out["x-kubernetes-validations"] = cel[title]
    return out


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(raw, defs, _cel_by_title())


def _strip_defaults(node: Any) -> Any:
    """Status is written by the operator, never defaulted by the API server."""
    if isinstance(node, dict):
        return {k: _strip_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_strip_defaults(x) for x in node]
    return node


def build_crd() -> dict[str, Any]:
    spec_schema = _schema_of(m.ModelDeploymentSpec)
    status_schema = _strip_defaults(_schema_of(m.ModelDeploymentStatus))
    # kopf keeps its own bookkeeping under status.kopf; let it through untyped.
    status_schema["properties"]["kopf"] = {
        "type": "object",
        "description": "The operator framework's own bookkeeping.",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Pipeline phase."},
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": ".status.reason",
            "description": "Why the phase is Failed.",
        },
        {
            "name": "Accuracy",
            "type": "number",
            "jsonPath": ".status.model.accuracy",
            "description": "Test accuracy of the trained model.",
        },
        {
            "name": "Engine",
            "type": "string",
            "jsonPath": ".status.engine.precision",
            "description": "Precision of the engine being served.",
        },
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": ".status.serving.readyReplicas",
            "description": "Ready serving replicas.",
        },
        {"name": "URL", "type": "string", "jsonPath": ".status.serving.url", "description": "V2 endpoint."},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Message",
            "type": "string",
            "jsonPath": ".status.message",
            "priority": 1,
            "description": "Detail of the phase (kubectl get -o wide).",
        },
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{m.PLURAL}.{m.GROUP}",
            "labels": {"app.kubernetes.io/name": "trtforge", "app.kubernetes.io/part-of": "trtforge"},
        },
        "spec": {
            "group": m.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": m.KIND,
                "listKind": f"{m.KIND}List",
                "plural": m.PLURAL,
                "singular": m.SINGULAR,
                "shortNames": m.SHORT_NAMES,
                "categories": ["trtforge", "ml"],
            },
            "versions": [
                {
                    "name": m.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.serving.replicas",
                            "statusReplicasPath": ".status.serving.replicas",
                            "labelSelectorPath": ".status.serving.selector",
                        },
                    },
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A model trained (or imported), converted to verified TensorRT "
                            "engines per GPU architecture, and served with autoscaling.",
                            "required": ["spec"],
                            "x-kubernetes-validations": [r.crd() for r in m.NAME_RULES],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version."},
                                "kind": {"type": "string", "description": "Kind."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Quotes strings that YAML 1.1 readers (kubectl's Go yaml) would take for booleans, e.g. `y`."""


_YAML11_BOOLS = {
    "y",
    "Y",
    "n",
    "N",
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "NO",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
}
_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="'" if value in _YAML11_BOOLS else None
    ),
)


def render() -> str:
    header = (
        "# GENERATED from runtime/trtforge_runtime/spec/model.py by\n"
        "#   python -m trtforge_runtime.spec.crd --write\n"
        "# Do not edit by hand; CI fails when this file is stale.\n"
    )
    return header + yaml.dump(build_crd(), Dumper=_Dumper, sort_keys=False, width=100)


def spec_openapi_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the CRD (for validating manifests with jsonschema)."""
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="rewrite the CRD file")
    group.add_argument("--check", action="store_true", help="fail when the CRD file is stale")
    parser.add_argument("--path", type=Path, default=CRD_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.path.parent.mkdir(parents=True, exist_ok=True)
        args.path.write_text(text)
        print(f"wrote {args.path}")
        return 0
    current = args.path.read_text() if args.path.exists() else ""
    if current != text:
        print(f"{args.path} is stale: run python -m trtforge_runtime.spec.crd --write", file=sys.stderr)
        return 1
    print(f"{args.path} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
