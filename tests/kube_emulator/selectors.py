"""Label and field selectors: the parser and matcher behind `?labelSelector=` and `?fieldSelector=`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kube_emulator.errors import bad_request

_KEY = r"[A-Za-z0-9_./-]+"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")
_CMP_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects without the key, as in Kubernetes
        return not present or value not in self.values


def _split_top(text: str) -> list[str]:
    """Split at commas that are not inside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (x.strip() for x in parts) if p]


class LabelSelector:
    """A parsed `labelSelector` string (=, ==, !=, in, notin, exists, !exists)."""

    def __init__(self, requirements: list[Requirement]) -> None:
        self.requirements = requirements

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        reqs: list[Requirement] = []
        for part in _split_top(text or ""):
            if m := _SET_RE.match(part):
                values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
                reqs.append(Requirement(m.group(1), m.group(2), values))
            elif m := _CMP_RE.match(part):
                op = "=" if m.group(2) in ("=", "==") else "!="
                reqs.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
            elif m := _EXISTS_RE.match(part):
                reqs.append(Requirement(m.group(2), "!" if m.group(1) else "exists", frozenset()))
            else:
                raise bad_request(f"unable to parse requirement: {part!r}: invalid label selector")
        return cls(reqs)

    @classmethod
    def from_dict(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """From a `metav1.LabelSelector` (matchLabels + matchExpressions)."""
        selector = selector or {}
        reqs = [
            Requirement(k, "=", frozenset([str(v)])) for k, v in (selector.get("matchLabels") or {}).items()
        ]
        ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
        for expr in selector.get("matchExpressions") or []:
            reqs.append(Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or [])))
        return cls(reqs)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def __str__(self) -> str:
        out = []
        for r in self.requirements:
            if r.op in ("=", "!="):
                out.append(f"{r.key}{r.op}{next(iter(r.values))}")
            elif r.op == "exists":
                out.append(r.key)
            elif r.op == "!":
                out.append(f"!{r.key}")
            else:
                out.append(f"{r.key} {r.op} ({','.join(sorted(r.values))})")
        return ",".join(out)


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """The string form of a `metav1.LabelSelector`, as in `Scale.status.selector`."""
    return str(LabelSelector.from_dict(selector))


def dotted(obj: Mapping[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


class FieldSelector:
    """A parsed `fieldSelector` (`=`, `==`, `!=` on the fields each kind supports)."""

    def __init__(self, terms: list[tuple[str, str, str]]) -> None:
        self.terms = terms

    @classmethod
    def parse(cls, text: str | None, supported: Callable[[str], bool]) -> FieldSelector:
        terms = []
        for part in _split_top(text or ""):
            m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
            if not m:
                raise bad_request(f"invalid field selector: {part!r}")
            field, op, value = m.group(1), m.group(2), m.group(3)
            if not supported(field):
                raise bad_request(f'field label not supported: "{field}"')
            terms.append((field, "!=" if op == "!=" else "=", value))
        return cls(terms)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for field, op, value in self.terms:
            actual = dotted(obj, field)
            text = (
                "" if actual is None else (str(actual).lower() if isinstance(actual, bool) else str(actual))
            )
            if (text == value) != (op == "="):
                return False
        return True

    def __bool__(self) -> bool:
        return bool(self.terms)
