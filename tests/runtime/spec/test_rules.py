"""pydantic and the CRD (through the test API server, what `kubectl apply` meets) agree on every rule.

Each case changes the digits example and says which CEL rule of the CRD it breaks (or none). Every case
goes through `parse_manifest` (the CLI's check) and through the emulator's admission (schema + CEL): both
must accept the valid ones and refuse the invalid ones with the rule's message. Every CEL rule of the CRD
must be broken by at least one case, so a new rule without a case fails here.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kube_emulator.errors import ApiError
from kube_emulator.fixtures import kube  # noqa: F401  (the emulator with the project CRD)
from kube_emulator.helpers import Kube
from spec_cases import CASES, example, in_schema
from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec import crd
from trtforge_runtime.spec.load import parse_manifest
from trtforge_runtime.spec.rules import QUANTITY, ZERO_QUANTITY, matches


def _pydantic_error(doc: dict[str, Any]) -> str | None:
    try:
        parse_manifest(copy.deepcopy(doc))
    except ManifestError as exc:
        return str(exc)
    return None


def _api_error(kube: Kube, doc: dict[str, Any]) -> str | None:  # noqa: F811
    try:
        kube.create(copy.deepcopy(doc), "default")
    except ApiError as exc:
        return exc.message
    kube.delete("trtforge.dev/v1alpha1", "ModelDeployment", doc["metadata"]["name"], "default")
    return None


def _crd_rules() -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            out.extend(node.get("x-kubernetes-validations") or [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(crd.spec_openapi_schema())
    return out


def test_pydantic_and_the_api_server_agree_on_every_case(kube: Kube) -> None:  # noqa: F811
    disagreements = []
    for case_id, changes, wanted in CASES:
        if not all(in_schema(k.replace(".", "__")) for k in changes):
            continue
        doc = example(**changes)
        local, api = _pydantic_error(doc), _api_error(kube, doc)
        if wanted is None:
            if local or api:
                disagreements.append(f"{case_id}: valid, but pydantic: {local!r}; API server: {api!r}")
            continue
        if not local or not api:
            disagreements.append(f"{case_id}: invalid, but pydantic: {local!r}; API server: {api!r}")
        elif wanted not in api or (wanted != "should match" and wanted not in local):
            disagreements.append(f"{case_id}: expected {wanted!r}; pydantic: {local!r}; API server: {api!r}")
    assert not disagreements, "\n".join(disagreements)


def _rule_message(rule: dict[str, str]) -> str:
    """What a refusal by this rule says (messageExpression rules: their constant part)."""
    if rule.get("messageExpression"):
        return rule["messageExpression"].split("'")[1]
    return rule["message"]


def test_every_cel_rule_is_broken_by_a_case() -> None:
    messages = [wanted for _, _, wanted in CASES if wanted]
    untested = [
        r["rule"]
        for r in _crd_rules()
        if not any(_rule_message(r) in m or m in _rule_message(r) for m in messages)
    ]
    assert not untested, f"CEL rules no case breaks: {untested}"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1", True), ("500m", True), ("1.5Gi", True), (".5", True), ("1.", True), ("128974848", True),
        ("129e6", True), ("129E-3", True), ("123Mi", True), ("2u", True), ("1n", True),
        ("1.2.3", False), ("1e", False), ("-2", False), ("+1", False), ("1GB", False), ("Gi", False),
        ("", False), ("1 Gi", False), ("0x10", False),
    ],
)  # fmt: skip
def test_quantity_grammar(text: str, ok: bool) -> None:
    """https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/ (unsigned)."""
    assert matches(QUANTITY, text) is ok


@pytest.mark.parametrize("text", ["0", "0.0", "0Gi", ".0m", "00", "0e3"])
def test_zero_quantities(text: str) -> None:
    assert matches(QUANTITY, text) and matches(ZERO_QUANTITY, text)
