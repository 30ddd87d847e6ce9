"""Cross-field rules of the ModelDeployment API, each declared ONCE for both places that enforce it.

A `Rule` holds a CEL expression (the CRD's `x-kubernetes-validations`, evaluated by the API server, so
`kubectl apply` refuses the object) and the same rule as a Python predicate (run by the pydantic models,
so `trtforge train/convert/local` refuse it without a cluster). Both are written side by side, and
`tests/runtime/spec/test_rules.py` sends every rule through the test API server (CEL) and through
pydantic with an object that satisfies it and one that breaks it: the two must agree.

The patterns are Kubernetes' own (RE2 and Python `re` read them the same way):
https://kubernetes.io/docs/concepts/overview/working-with-objects/names/ (DNS-1035 labels, DNS-1123
subdomains), https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
(qualified keys, label values), and the quantity grammar of
https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# <quantity> ::= <signedNumber><suffix>; <number> ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
# <suffix> ::= <binarySI> (Ki..Ei) | <decimalSI> (n u m "" k M G T P E) | <decimalExponent> (e/E<signed>)
# A resource amount cannot be negative (the API server refuses negative requests and limits), so no sign.
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
# a quantity whose number is zero ("0", "0.0", "0Gi", ".0m", "0e3")
ZERO_QUANTITY = r"^(0+(\.0*)?|\.0+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# an optional DNS-1123 subdomain prefix and "/", then a name of at most 63 characters
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
# ModelDeployment names: the Service is named like the object, so a DNS-1035 label of at most 63
# characters; every child name and label value derived from it then fits (names are cut and hashed
# past 63 characters, see trtforge_operator.naming).
NAME_MAX = 63


def matches(pattern: str, value: str) -> bool:
    return re.search(pattern, value) is not None


def quantity_ok(value: str | int) -> bool:
    """A positive Kubernetes quantity (ints are whole units)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return matches(QUANTITY, value) and not matches(ZERO_QUANTITY, value)


def cel_string(text: str) -> str:
    """A CEL string literal (single-quoted, backslashes and quotes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Rule:
    """One rule: `cel` for the API server, `check` (the model instance -> ok) for pydantic."""

    cel: str
    message: str
    check: Callable[[Any], bool]
    # CEL that builds the message from `self` (the API server's messageExpression) and its Python twin
    message_expression: str | None = None
    describe: Callable[[Any], str] | None = None
    field_path: str | None = None

    def crd(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.message_expression:
            out["messageExpression"] = self.message_expression
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out

    def error(self, obj: Any) -> str | None:
        """The message when `obj` breaks the rule, else None."""
        if self.check(obj):
            return None
        return self.describe(obj) if self.describe else self.message


def quantity_rule(field: str, attr: str) -> Rule:
    """`field` (camelCase) holds a positive quantity; `attr` is its Python attribute."""
    zero = cel_string(ZERO_QUANTITY)
    return Rule(
        cel=f"type(self.{field}) == int ? self.{field} > 0 : !self.{field}.matches({zero})",
        message=f"{field} must be more than zero (a zero request or limit is no limit at all to the kubelet)",
        check=lambda obj: quantity_ok(getattr(obj, attr)),
        field_path=f".{field}",
    )


def ordered_range_rule(what: str) -> Rule:
    """`min <= opt <= max` of an optimization profile; `what` starts the message ("batch needs ...")."""
    return Rule(
        cel="self.min <= self.opt && self.opt <= self.max",
        message=f"{what} needs min <= opt <= max",
        check=lambda r: r.min <= r.opt <= r.max,
        describe=lambda r: f"{what} needs min <= opt <= max, got {r.min}, {r.opt}, {r.max}",
    )


def check_rules(obj: Any, rules: tuple[Rule, ...]) -> None:
    """Raise ValueError with the message of the first rule `obj` breaks (pydantic reports it)."""
    for rule in rules:
        problem = rule.error(obj)
        if problem is not None:
            raise ValueError(problem)
