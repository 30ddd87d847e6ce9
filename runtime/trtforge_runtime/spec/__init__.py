"""The ModelDeployment API: typed models, manifest loading, and the generated CRD."""

from trtforge_runtime.spec.load import load_manifest, parse_manifest
from trtforge_runtime.spec.model import ModelDeployment, ModelDeploymentSpec

__all__ = ["ModelDeployment", "ModelDeploymentSpec", "load_manifest", "parse_manifest"]
