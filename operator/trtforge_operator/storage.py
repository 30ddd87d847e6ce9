"""Where a ModelDeployment's artifacts live, and how pods reach them.

Supported stores (spec.storage.uri, else the operator default TRTFORGE_STORAGE_URI):

- `pvc://CLAIM/PREFIX`: the claim is mounted at TRTFORGE_ARTIFACTS_MOUNT (default /artifacts) in every
  training, conversion and serving pod; stages get plain paths (`/artifacts/PREFIX/NS/NAME/models/REV`).
  Serving pods mount it read-only. The claim must be ReadWriteMany when pods run on several nodes.
- `s3://BUCKET/PREFIX`: pods get a scratch emptyDir at the mount and the Secret named by
  spec.storage.secretRef as environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL...);
  stages get `s3://` URIs and read/write them through fsspec (the images' `s3` extra).

Datasets and imported models given as `pvc://CLAIM/PATH` are mounted read-only under /mnt/pvc/CLAIM
and found through TRTFORGE_PVC_ROOT (the runtime's dataset contract).

Claims live per namespace (a pod mounts claims of its own namespace only): `ensure_claims` creates the
default store's claim in a ModelDeployment's namespace on first use and refuses, before any Job exists,
a ModelDeployment whose claims are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtforge_runtime.spec.model import ModelDeploymentSpec

from trtforge_operator import labels
from trtforge_operator.apply import Action, Kube, ensure_present
from trtforge_operator.errors import UnworkableSpecError
from trtforge_operator.settings import OperatorSettings

PVC_ROOT = "/mnt/pvc"
PVC_ROOT_ENV = "TRTFORGE_PVC_ROOT"
ARTIFACTS_VOLUME = "artifacts"


@dataclass(frozen=True)
class Location:
    """One artifact folder: `uri` for status and users, `path` for the stage's command line."""

    uri: str
    path: str


@dataclass(frozen=True)
class ArtifactStore:
    scheme: str  # "pvc" | "s3"
    root: str  # claim (pvc) or bucket (s3)
    prefix: str  # path inside the claim / bucket, no leading or trailing slash
    mount: str
    secret: str | None

    @classmethod
    def from_uri(cls, uri: str, mount: str, secret: str | None = None) -> ArtifactStore:
        scheme, _, rest = uri.partition("://")
        if scheme not in ("pvc", "s3") or not rest:
            raise ValueError(
                f"unsupported artifact store {uri!r} (expected pvc://CLAIM/PREFIX or s3://BUCKET/PREFIX)"
            )
        root, _, prefix = rest.partition("/")
        return cls(scheme, root, prefix.strip("/"), mount.rstrip("/") or "/", secret)

    def location(self, *parts: str) -> Location:
        rel = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        uri = f"{self.scheme}://{self.root}/{rel}"
        path = f"{self.mount}/{rel}" if self.scheme == "pvc" else uri
        return Location(uri=uri, path=path)

    def volume(self) -> dict[str, Any]:
        if self.scheme == "pvc":
            return {"name": ARTIFACTS_VOLUME, "persistentVolumeClaim": {"claimName": self.root}}
        return {"name": ARTIFACTS_VOLUME, "emptyDir": {}}

    def mount_spec(self, read_only: bool) -> dict[str, Any]:
        m: dict[str, Any] = {"name": ARTIFACTS_VOLUME, "mountPath": self.mount}
        if read_only and self.scheme == "pvc":
            m["readOnly"] = True
        return m

    def env_from(self) -> list[dict[str, Any]]:
        """The storage Secret's keys as environment (s3 credentials); any store may name one."""
        return [{"secretRef": {"name": self.secret}}] if self.secret else []


def claim_manifest(namespace: str, name: str, settings: OperatorSettings) -> dict[str, Any]:
    """The default store's claim in `namespace`, as the chart's storage.pvc values describe it."""
    spec: dict[str, Any] = {
        "accessModes": [settings.claim_access_mode],
        "resources": {"requests": {"storage": settings.claim_size}},
    }
    if settings.claim_storage_class:
        spec["storageClassName"] = settings.claim_storage_class
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/name": "trtforge",
            "app.kubernetes.io/component": "artifacts",
            "app.kubernetes.io/managed-by": labels.MANAGED_BY,
            "app.kubernetes.io/part-of": labels.PART_OF,
        },
    }
    if settings.claim_annotations:
        meta["annotations"] = dict(settings.claim_annotations)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


def default_claim(settings: OperatorSettings) -> str | None:
    """The claim of the operator's default store (TRTFORGE_STORAGE_URI pvc://CLAIM/...), if it is one."""
    uri = settings.storage_uri
    return uri.removeprefix("pvc://").partition("/")[0] if uri.startswith("pvc://") else None


async def ensure_claims(
    kube: Kube, namespace: str, store: ArtifactStore, spec: ModelDeploymentSpec, settings: OperatorSettings
) -> list[str]:
    """Make sure every claim the pods will mount exists in `namespace`, before any of them is created.

    The default store's claim is created when missing (TRTFORGE_CLAIM_CREATE, not owned by the
    ModelDeployment: deleting one keeps the artifacts); any other missing claim (a spec's own
    pvc://CLAIM store or dataset, or the default one with creation off) is an UnworkableSpecError naming
    the claim and the namespace, so no Job waits Pending for a volume that will never come. Returns the
    claims created.
    """
    wanted = ([(store.root, "spec.storage.uri")] if store.scheme == "pvc" else []) + [
        (claim, "spec.model") for claim in input_claims(spec)
    ]
    created = []
    for claim, field in wanted:
        if claim == default_claim(settings) and settings.claim_create:
            action, _ = await ensure_present(kube, claim_manifest(namespace, claim, settings))
            if action is Action.CREATED:
                created.append(claim)
            continue
        if await kube.get("v1", "PersistentVolumeClaim", namespace, claim) is None:
            how = (
                "create it, or let the operator create it (Helm value storage.pvc.create=true)"
                if claim == default_claim(settings)
                else "create it in this namespace"
            )
            raise UnworkableSpecError(
                field, f"PersistentVolumeClaim {namespace}/{claim} does not exist: {how}"
            )
    return created


def claims_in_use(spec: ModelDeploymentSpec, storage_uri: str) -> list[str]:
    """Every claim a ModelDeployment's pods mount: its store's (pvc://CLAIM/...) and its input claims."""
    store = [storage_uri.removeprefix("pvc://").partition("/")[0]] if storage_uri.startswith("pvc://") else []
    return list(dict.fromkeys([*store, *input_claims(spec)]))


def input_claims(spec: ModelDeploymentSpec) -> list[str]:
    """PersistentVolumeClaims named by pvc:// dataset or model-source URIs, in order, deduplicated."""
    uris: list[str] = []
    if spec.model.train is not None:
        if spec.model.train.dataset is not None:  # custom code may bring its own data
            uris.append(spec.model.train.dataset.uri)
        if spec.model.train.custom is not None and spec.model.train.custom.code:
            uris.append(spec.model.train.custom.code)  # the user's training code
    if spec.model.source is not None:
        uris.append(spec.model.source.uri)
        if spec.model.source.dataset is not None:
            uris.append(spec.model.source.dataset.uri)
    claims: list[str] = []
    for uri in uris:
        if uri.startswith("pvc://"):
            claim = uri.removeprefix("pvc://").partition("/")[0]
            if claim and claim not in claims:
                claims.append(claim)
    return claims


def input_volumes(spec: ModelDeploymentSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) of the read-only input claims under /mnt/pvc/CLAIM."""
    volumes, mounts = [], []
    for i, claim in enumerate(input_claims(spec)):
        vol = f"input-{i}"
        volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        mounts.append({"name": vol, "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": True})
    return volumes, mounts
