"""Reading a ModelDeployment manifest from a file, with errors that name the field path.

The CLI (train/convert/local) and the operator both go through `parse_manifest`, so a bad manifest is
reported the same way everywhere: `spec.model.train.epochs: Input should be greater than or equal to 1`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec.model import API_VERSION, KIND, ModelDeployment, ModelDeploymentSpec


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each starting with the dotted field path (list indices in brackets)."""
    lines = []
    for err in exc.errors():
        path = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else str(part)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] in ("enum", "literal_error") and "input" in err:
            msg += f" (got {err['input']!r})"
        lines.append(f"{path or '<root>'}: {msg}")
    return "\n".join(lines)


def parse_manifest(doc: Any, source: str = "manifest") -> ModelDeployment:
    """Validate one parsed YAML document as a ModelDeployment."""
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: expected a ModelDeployment mapping, got {type(doc).__name__}")
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if kind != KIND or api != API_VERSION:
        raise ManifestError(
            f"{source}: not a ModelDeployment (apiVersion {API_VERSION}, kind {KIND}); "
            f"got apiVersion {api!r}, kind {kind!r}"
        )
    try:
        return ModelDeployment.model_validate(doc)
    except ValidationError as exc:
        raise ManifestError(f"{source}: invalid ModelDeployment:\n{format_validation_error(exc)}") from None


def parse_spec(spec: Any, source: str = "spec") -> ModelDeploymentSpec:
    """Validate a bare spec (as the operator receives it from the API server)."""
    try:
        return ModelDeploymentSpec.model_validate(spec)
    except ValidationError as exc:
        raise ManifestError(f"{source}: invalid spec:\n{format_validation_error(exc, 'spec')}") from None


def load_manifest(path: str | Path) -> ModelDeployment:
    """Read FILE: YAML with exactly one ModelDeployment document (other kinds are skipped)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ManifestError(f"{p}: cannot read manifest: {exc.strerror or exc}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(f"{p}: not valid YAML: {exc}") from None
    candidates = [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]
    if not candidates:
        if len(docs) == 1:
            return parse_manifest(docs[0], str(p))
        raise ManifestError(f"{p}: no ModelDeployment document found ({len(docs)} documents)")
    if len(candidates) > 1:
        raise ManifestError(f"{p}: {len(candidates)} ModelDeployment documents; trtforge takes exactly one")
    return parse_manifest(candidates[0], str(p))
