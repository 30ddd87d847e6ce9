"""Validation as the API server does it: object names and labels, and CRD structural schemas.

For custom resources, `admit_custom(obj, schema)` prunes unknown fields (unless
`x-kubernetes-preserve-unknown-fields`), drops nulls of non-nullable fields, applies defaults and
validates types, enums, bounds, patterns, required fields, list types, `x-kubernetes-int-or-string`
and the `x-kubernetes-validations` CEL rules (evaluated with cel-python), returning the field errors
the API server would answer with 422 Invalid. `check_crd_schema` refuses schemas that the API server
would not decode or accept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from functools import lru_cache
from typing import Any

from kube_emulator.errors import FieldError

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/ (the API server refuses
# anything else when it decodes the object: 400 "quantities must match the regular expression ...")
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")

# kinds whose names must be DNS-1123 labels (the rest: DNS-1123 subdomains); Services need DNS-1035 labels:
# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#rfc-1035-label-names and
# https://kubernetes.io/docs/concepts/services-networking/service/ ("a valid RFC 1035 label name")
LABEL_NAMED = {("", "namespaces")}
DNS1035_NAMED = {("", "services")}


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_name(name: str, store_key: tuple[str, str]) -> list[FieldError]:
    if store_key in DNS1035_NAMED:
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            return [
                FieldError(
                    "metadata.name",
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(name)}: a DNS-1035 label must consist of lower case alphanumeric "
                    "characters or '-', start with an alphabetic character, and end with an alphanumeric "
                    "character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
                    "'[a-z]([-a-z0-9]*[a-z0-9])?')",
                )
            ]
    elif store_key in LABEL_NAMED:
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            return [
                FieldError(
                    "metadata.name",
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(name)}: a lowercase RFC 1123 label must consist of lower case "
                    "alphanumeric characters or '-', start and end with an alphanumeric character, and be "
                    "at most 63 characters",
                )
            ]
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [
            FieldError(
                "metadata.name",
                "FieldValueInvalid",
                f"Invalid value: {_fmt(name)}: a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character, at most 253 characters",
            )
        ]
    return []


def check_qualified_key(key: str, field: str) -> list[FieldError]:
    prefix, _, name = key.rpartition("/")
    errs = []
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        errs.append(
            FieldError(
                field,
                "FieldValueInvalid",
                f"Invalid value: {_fmt(key)}: prefix part must be a lowercase RFC 1123 subdomain",
            )
        )
    if len(name) > 63 or not QUALIFIED_NAME.match(name):
        errs.append(
            FieldError(
                field,
                "FieldValueInvalid",
                f"Invalid value: {_fmt(key)}: name part must consist of alphanumeric characters, "
                "'-', '_' or '.', must start and end with an alphanumeric character, and be at most "
                "63 characters",
            )
        )
    return errs


def check_labels(labels: Any, field: str) -> list[FieldError]:
    """Label keys and values (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
    #syntax-and-character-set); node selectors follow the same rules."""
    if not isinstance(labels, dict):
        return [FieldError(field, "FieldValueInvalid", "Invalid value: labels must be a map")]
    errs: list[FieldError] = []
    for key, value in labels.items():
        errs += check_qualified_key(key, field)
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errs.append(
                FieldError(
                    field,
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(value)}: a valid label must be an empty string or "
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                    "with an alphanumeric character, at most 63 characters",
                )
            )
    return errs


def check_metadata(meta: dict[str, Any], prefix: str = "metadata") -> list[FieldError]:
    errs: list[FieldError] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [FieldError(f"{prefix}.labels", "FieldValueInvalid", "Invalid value: labels must be a map")]
    for key, value in labels.items():
        errs += check_qualified_key(key, f"{prefix}.labels")
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errs.append(
                FieldError(
                    f"{prefix}.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(value)}: a valid label must be an empty string or "
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                    "with an alphanumeric character, at most 63 characters",
                )
            )
    annotations = meta.get("annotations") or {}
    for key, value in annotations.items():
        errs += check_qualified_key(key, f"{prefix}.annotations")
        if not isinstance(value, str):
            errs.append(
                FieldError(
                    "metadata.annotations",
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(value)}: annotation values must be strings",
                )
            )
    if len(json.dumps(annotations)) > 256 * 1024:
        errs.append(
            FieldError(
                "metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes"
            )
        )
    return errs


# ------------------------------------------------------------------ pod specs


def bad_quantity(value: Any) -> bool:
    """Not a quantity at all: the API server cannot decode the object (400 BadRequest)."""
    return not isinstance(value, int | float) and not (isinstance(value, str) and QUANTITY.match(value))


def check_pod_spec(spec: Any, prefix: str) -> list[FieldError]:
    """What the API server validates in a pod spec beyond presence: resource amounts, node selector,
    tolerations (k8s.io/kubernetes pkg/apis/core/validation: ValidateResourceRequirements,
    ValidateTolerations, ValidateLabels for nodeSelector)."""
    if not isinstance(spec, dict):
        return []
    errs: list[FieldError] = []
    for i, c in enumerate((spec.get("containers") or []) + (spec.get("initContainers") or [])):
        res = c.get("resources") if isinstance(c, dict) else None
        for section in ("requests", "limits"):
            for key, amount in ((res or {}).get(section) or {}).items():
                field = f"{prefix}.containers[{i}].resources.{section}[{key}]"
                if (isinstance(amount, str) and amount.startswith("-")) or (
                    isinstance(amount, int | float) and amount < 0
                ):
                    errs.append(
                        FieldError(
                            field,
                            "FieldValueInvalid",
                            f"Invalid value: {_fmt(amount)}: must be greater than or equal to 0",
                        )
                    )
    errs += check_labels(spec.get("nodeSelector") or {}, f"{prefix}.nodeSelector")
    for i, tol in enumerate(spec.get("tolerations") or []):
        field = f"{prefix}.tolerations[{i}]"
        op, key, value = tol.get("operator", "Equal"), tol.get("key", ""), tol.get("value", "")
        if key:
            errs += check_qualified_key(key, f"{field}.key")
        elif op != "Exists":
            errs.append(
                FieldError(
                    f"{field}.operator",
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(op)}: operator must be Exists when `key` is empty, which means "
                    '"match all values and all keys"',
                )
            )
        if op == "Exists" and value:
            errs.append(
                FieldError(
                    f"{field}.operator",
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(value)}: value must be empty when `operator` is 'Exists'",
                )
            )
        if tol.get("tolerationSeconds") is not None and tol.get("effect") != "NoExecute":
            errs.append(
                FieldError(
                    f"{field}.effect",
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(tol.get('effect', ''))}: effect must be 'NoExecute' when "
                    "`tolerationSeconds` is set",
                )
            )
    return errs


def quantity_errors(obj: Any) -> str | None:
    """The decode error of the first malformed resource quantity in a pod template or pod, else None."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    if not isinstance(spec, dict):
        return None
    pod = spec.get("template", {}).get("spec") if isinstance(spec.get("template"), dict) else spec
    for c in ((pod or {}).get("containers") or []) + ((pod or {}).get("initContainers") or []):
        res = c.get("resources") if isinstance(c, dict) else None
        for section in ("requests", "limits"):
            for amount in ((res or {}).get(section) or {}).values():
                if bad_quantity(amount):
                    return (
                        "quantities must match the regular expression "
                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                    )
    return None


# ------------------------------------------------------------------ structural schemas


def admit_custom(
    obj: dict[str, Any],
    schema: dict[str, Any] | None,
    old: dict[str, Any] | None,
    unknown: list[str] | None = None,
) -> list[FieldError]:
    """Prune, default and validate a custom resource in place; the field errors (empty when valid).

    The paths of pruned unknown fields are appended to `unknown` (for fieldValidation Warn/Strict).
    """
    if schema is None:
        return []
    pruned: list[str] = [] if unknown is None else unknown
    root_props = schema.get("properties") or {}
    for key in list(obj):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        sub = root_props.get(key)
        if sub is None:
            if not schema.get("x-kubernetes-preserve-unknown-fields"):
                del obj[key]
                pruned.append(key)
            continue
        if obj[key] is None and not sub.get("nullable"):
            del obj[key]
            continue
        obj[key] = _prune_default(obj[key], sub, key, pruned)
    for key, sub in root_props.items():
        if key not in obj and key not in ("metadata", "apiVersion", "kind") and "default" in sub:
            obj[key] = _prune_default(json.loads(json.dumps(sub["default"])), sub, key, pruned)
    errs: list[FieldError] = []
    for key in schema.get("required") or []:
        if key not in obj:
            errs.append(FieldError(key, "FieldValueRequired", "Required value"))
    for key, sub in root_props.items():
        if key in obj and key not in ("metadata", "apiVersion", "kind"):
            _validate(obj[key], sub, key, errs, (old or {}).get(key), old is not None and key in (old or {}))
    root_rules = schema.get("x-kubernetes-validations")
    if root_rules:
        _cel(obj, root_rules, "", errs, old, old is not None, schema)
    return errs


def _prune_default(value: Any, schema: dict[str, Any], path: str, pruned: list[str]) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
            "x-kubernetes-embedded-resource"
        )
        for key in list(value):
            if props is not None and key in props:
                sub = props[key]
            elif isinstance(addl, dict):
                sub = addl
            elif preserve or addl is True:
                continue
            else:
                del value[key]
                pruned.append(f"{path}.{key}")
                continue
            if value[key] is None and not sub.get("nullable"):
                del value[key]
                continue
            value[key] = _prune_default(value[key], sub, f"{path}.{key}", pruned)
        for key, sub in (props or {}).items():
            if key not in value and "default" in sub:
                value[key] = _prune_default(
                    json.loads(json.dumps(sub["default"])), sub, f"{path}.{key}", pruned
                )
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [_prune_default(v, items, f"{path}[{i}]", pruned) for i, v in enumerate(value)]
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, wanted: str) -> bool:
    actual = _type_name(value)
    return actual == wanted or (wanted == "number" and actual == "integer")


def _validate(
    value: Any, schema: dict[str, Any], path: str, errs: list[FieldError], old: Any, has_old: bool
) -> None:
    if value is None:
        if not schema.get("nullable"):
            errs.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f'Invalid value: "null": {path} in body must be of type {schema.get("type")}: "null"',
                )
            )
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, str | int) or isinstance(value, bool):
            errs.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f'Invalid value: "{_type_name(value)}": {path} in body must be of type '
                    f'integer,string: "{_type_name(value)}"',
                )
            )
            return
    elif (wanted := schema.get("type")) and not _type_ok(value, wanted):
        errs.append(
            FieldError(
                path,
                "FieldValueTypeInvalid",
                f'Invalid value: "{_type_name(value)}": {path} in body must be of type {wanted}: '
                f'"{_type_name(value)}"',
            )
        )
        return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(_fmt(e) for e in enum)
        errs.append(
            FieldError(
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {_fmt(value)}: supported values: {supported}",
            )
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        _bounds(value, schema, path, errs)
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append(
                FieldError(
                    path, "FieldValueTooLong", f"Too long: may not be more than {schema['maxLength']} bytes"
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(value)}: {path} in body should be at least "
                    f"{schema['minLength']} chars long",
                )
            )
        pattern = schema.get("pattern")
        if pattern and not re.search(pattern, value):
            errs.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(value)}: {path} in body should match '{pattern}'",
                )
            )
    if isinstance(value, list):
        _validate_list(value, schema, path, errs, old, has_old)
    if isinstance(value, dict):
        _validate_map(value, schema, path, errs, old, has_old)
    rules = schema.get("x-kubernetes-validations")
    if rules:
        _cel(value, rules, path, errs, old, has_old, schema)


def _bounds(value: float, schema: dict[str, Any], path: str, errs: list[FieldError]) -> None:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    # JSON-Schema-2020 numeric exclusive bounds only get here through a lenient CRD install
    if isinstance(xlo, int | float) and not isinstance(xlo, bool):
        lo, xlo = xlo, True
    if isinstance(xhi, int | float) and not isinstance(xhi, bool):
        hi, xhi = xhi, True
    if lo is not None and (value < lo or (xlo and value == lo)):
        rel = "greater than" if xlo else "greater than or equal to"
        errs.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_fmt(value)}: {path} in body should be {rel} {_fmt(lo)}",
            )
        )
    if hi is not None and (value > hi or (xhi and value == hi)):
        rel = "less than" if xhi else "less than or equal to"
        errs.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_fmt(value)}: {path} in body should be {rel} {_fmt(hi)}",
            )
        )
    mult = schema.get("multipleOf")
    if mult and (value / mult) != int(value / mult):
        errs.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_fmt(value)}: {path} in body should be a multiple of {_fmt(mult)}",
            )
        )


def _validate_list(
    value: list[Any], schema: dict[str, Any], path: str, errs: list[FieldError], old: Any, has_old: bool
) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errs.append(
            FieldError(
                path,
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
            )
        )
    if "minItems" in schema and len(value) < schema["minItems"]:
        errs.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {len(value)}: {path} in body should have at least "
                f"{schema['minItems']} items",
            )
        )
    list_type = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or list_type == "set":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                errs.append(
                    FieldError(f"{path}[{i}]", "FieldValueDuplicate", f"Duplicate value: {_fmt(item)}")
                )
            seen.append(item)
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: list[tuple[Any, ...]] = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                ident = tuple(item.get(k) for k in keys)
                if ident in seen_keys:
                    errs.append(
                        FieldError(
                            f"{path}[{i}]",
                            "FieldValueDuplicate",
                            f"Duplicate value: {json.dumps(dict(zip(keys, ident, strict=True)))}",
                        )
                    )
                seen_keys.append(ident)
    items = schema.get("items")
    if isinstance(items, dict):
        old_items = old if isinstance(old, list) else []
        for i, item in enumerate(value):
            prev = old_items[i] if i < len(old_items) else None
            _validate(item, items, f"{path}[{i}]", errs, prev, has_old and i < len(old_items))


def _validate_map(
    value: dict[str, Any], schema: dict[str, Any], path: str, errs: list[FieldError], old: Any, has_old: bool
) -> None:
    old_map = old if isinstance(old, dict) else {}
    for key in schema.get("required") or []:
        if key not in value:
            errs.append(FieldError(f"{path}.{key}", "FieldValueRequired", "Required value"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errs.append(
            FieldError(
                path,
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
            )
        )
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errs.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {len(value)}: {path} in body should have at least "
                f"{schema['minProperties']} properties",
            )
        )
    props = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    for key, item in value.items():
        sub = props.get(key)
        if sub is None and isinstance(addl, dict):
            sub = addl
        if sub is not None:
            _validate(item, sub, f"{path}.{key}", errs, old_map.get(key), has_old and key in old_map)


# ------------------------------------------------------------------ CEL


@lru_cache(maxsize=1024)
def _program(rule: str) -> Any:
    import celpy

    # cel-python logs every evaluation step at DEBUG: far too costly for an API server under test
    logging.getLogger("celpy").setLevel(logging.WARNING)
    env = celpy.Environment()
    return env.program(env.compile(rule))


def compile_error(rule: str) -> str | None:
    try:
        _program(rule)
    except Exception as exc:  # celpy raises its own parser errors
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def to_cel(value: Any, schema: dict[str, Any] | None) -> Any:
    """A JSON value as a CEL value typed by its schema, as Kubernetes does (a `number` field is a
    double even when written as 1; an object's properties typed by theirs)."""
    from celpy import celtypes
    from celpy.adapter import json_to_cel

    schema = schema or {}
    if value is None or (schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema):
        return json_to_cel(value)
    if schema.get("type") == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        return celtypes.MapType(
            {
                celtypes.StringType(k): to_cel(v, props.get(k) or (addl if isinstance(addl, dict) else None))
                for k, v in value.items()
            }
        )
    if isinstance(value, list):
        items = schema.get("items")
        return celtypes.ListType([to_cel(v, items if isinstance(items, dict) else None) for v in value])
    return json_to_cel(value)


def _cel(
    value: Any,
    rules: list[dict[str, Any]],
    path: str,
    errs: list[FieldError],
    old: Any,
    has_old: bool,
    schema: dict[str, Any],
) -> None:
    from celpy.evaluation import CELEvalError

    for rule in rules:
        text = rule["rule"]
        uses_old = "oldSelf" in text
        if uses_old and not has_old and not rule.get("optionalOldSelf"):
            continue  # transition rules only run on updates
        activation = {"self": to_cel(value, schema)}
        if uses_old:
            activation["oldSelf"] = to_cel(old, schema)
        field = path
        if rule.get("fieldPath"):
            field = f"{path}{rule['fieldPath']}" if path else rule["fieldPath"].lstrip(".")
        try:
            result = _program(text).evaluate(activation)
        except Exception as exc:  # a compile or runtime error is a validation failure, as in the API server
            errs.append(
                FieldError(
                    field, "FieldValueInvalid", f"Invalid value: {_fmt(value)}: {exc} evaluating rule: {text}"
                )
            )
            continue
        if isinstance(result, CELEvalError):
            errs.append(
                FieldError(
                    field,
                    "FieldValueInvalid",
                    f"Invalid value: {_fmt(value)}: {result.args[0] if result.args else result} "
                    f"evaluating rule: {text}",
                )
            )
            continue
        if bool(result):
            continue
        message = rule.get("message") or f"failed rule: {text}"
        if rule.get("messageExpression"):
            with contextlib.suppress(Exception):  # the API server falls back to the message
                message = str(_program(rule["messageExpression"]).evaluate(activation))
        reason = {
            "FieldValueForbidden": "FieldValueForbidden",
            "FieldValueRequired": "FieldValueRequired",
            "FieldValueDuplicate": "FieldValueDuplicate",
        }.get(rule.get("reason", ""), "FieldValueInvalid")
        if reason == "FieldValueInvalid":
            errs.append(FieldError(field, reason, f"Invalid value: {_fmt(value)}: {message}"))
        else:
            errs.append(FieldError(field, reason, message))


# ------------------------------------------------------------------ CRD schemas

_BOOL_KEYS = {
    "exclusiveMinimum",
    "exclusiveMaximum",
    "uniqueItems",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
}
_NUM_KEYS = {"minimum", "maximum", "multipleOf"}
_INT_KEYS = {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}
_STR_KEYS = {
    "type",
    "pattern",
    "format",
    "description",
    "title",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
}
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def check_crd_schema(schema: Any, path: str = "openAPIV3Schema") -> list[str]:
    """Problems the API server would refuse a CRD's openAPIV3Schema for (decode errors, bad CEL, ...)."""
    problems: list[str] = []
    if not isinstance(schema, dict):
        return [f"{path}: must be an object"]
    for key, val in schema.items():
        where = f"{path}.{key}"
        if key in _BOOL_KEYS and not isinstance(val, bool):
            problems.append(
                f"{where}: cannot unmarshal {_type_name(val)} into a bool "
                "(OpenAPI v3.0 / Kubernetes: exclusive bounds are booleans that modify minimum/maximum)"
            )
        elif key in _NUM_KEYS and (not isinstance(val, int | float) or isinstance(val, bool)):
            problems.append(f"{where}: must be a number")
        elif key in _INT_KEYS and (not isinstance(val, int) or isinstance(val, bool)):
            problems.append(f"{where}: must be an integer")
        elif key in _STR_KEYS and not isinstance(val, str):
            problems.append(f"{where}: must be a string")
        elif key in ("$ref", "$schema", "definitions", "dependencies", "patternProperties", "id"):
            problems.append(f"{where}: Forbidden: {key} is not supported")
    if "type" in schema and schema["type"] not in _TYPES:
        problems.append(f"{path}.type: Unsupported value: {_fmt(schema['type'])}")
    if "properties" in schema and isinstance(schema.get("additionalProperties"), dict):
        problems.append(
            f"{path}.additionalProperties: Forbidden: additionalProperties and properties are mutually "
            "exclusive"
        )
    if (
        "type" not in schema
        and not schema.get("x-kubernetes-int-or-string")
        and not schema.get("x-kubernetes-preserve-unknown-fields")
        and path != "openAPIV3Schema"
    ):
        problems.append(f"{path}.type: Required value: must not be empty for specified object fields")
    for name, sub in (schema.get("properties") or {}).items():
        problems += check_crd_schema(sub, f"{path}.properties[{name}]")
    if isinstance(schema.get("items"), dict):
        problems += check_crd_schema(schema["items"], f"{path}.items")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += check_crd_schema(schema["additionalProperties"], f"{path}.additionalProperties")
    for i, rule in enumerate(schema.get("x-kubernetes-validations") or []):
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
            problems.append(f"{path}.x-kubernetes-validations[{i}].rule: Required value")
            continue
        err = compile_error(rule["rule"])
        if err:
            problems.append(
                f"{path}.x-kubernetes-validations[{i}].rule: Invalid value: "
                f"{_fmt(rule['rule'])}: compilation failed: {err}"
            )
    return problems


# kinds with a pod template under spec.template (their pods' specs are validated like a pod's)
TEMPLATE_KINDS = {
    ("batch", "jobs"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
}


def builtin_errors(store_key: tuple[str, str], obj: dict[str, Any]) -> list[FieldError]:
    """Field errors of a built-in kind's pod spec (and its template's labels); raises the decode error
    (400) of a malformed quantity first, as the API server answers before validating anything."""
    from kube_emulator.errors import bad_request

    if store_key != ("", "pods") and store_key not in TEMPLATE_KINDS:
        return []
    decode = quantity_errors(obj)
    if decode:
        raise bad_request(decode)
    spec = obj.get("spec") or {}
    if store_key == ("", "pods"):
        return check_pod_spec(spec, "spec")
    template = spec.get("template") or {}
    errs = check_metadata(template.get("metadata") or {}, "spec.template.metadata")
    return errs + check_pod_spec(template.get("spec"), "spec.template.spec")
