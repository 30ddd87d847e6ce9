"""The reconcile plan: everything derived purely from one ModelDeployment and the operator settings.

Revisions, child names and artifact locations are computed once here and handed to the reconcilers,
which turn them into manifests; nothing in this module talks to the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtforge_runtime.spec.model import API_VERSION, KIND, Backend, ModelDeploymentSpec, Storage

from trtforge_operator import naming
from trtforge_operator.settings import OperatorSettings
from trtforge_operator.storage import ArtifactStore, Location


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment that owns the children."""

    name: str
    namespace: str
    uid: str
    generation: int = 1

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class Plan:
    owner: Owner
    spec: ModelDeploymentSpec
    settings: OperatorSettings
    store: ArtifactStore
    training: str
    engine: str
    serving: str

    @classmethod
    def build(cls, owner: Owner, spec: ModelDeploymentSpec, settings: OperatorSettings) -> Plan:
        storage_uri = storage_uri_of(spec, settings)
        secret = storage_secret_of(spec, settings, storage_uri)
        store = ArtifactStore.from_uri(storage_uri, settings.artifacts_mount, secret[0] if secret else None)
        training = naming.training_revision(spec, storage_uri)
        engine = naming.engine_revision(training, spec)
        serving = naming.serving_revision(engine, spec, settings.server_image)
        return cls(owner, spec, settings, store, training, engine, serving)

    @property
    def storage_secret(self) -> tuple[str, str] | None:
        """(Secret name, the field or setting that names it) of the store's credentials, if any."""
        return storage_secret_of(self.spec, self.settings, f"{self.store.scheme}://")

    # ------------------------------------------------------------------ locations
    @property
    def model_location(self) -> Location:
        if self.spec.model.source is not None:
            uri = self.spec.model.source.uri
            return Location(uri=uri, path=uri)
        return self.store.location(self.owner.namespace, self.owner.name, "models", self.training)

    @property
    def engine_location(self) -> Location:
        return self.store.location(self.owner.namespace, self.owner.name, "engines", self.engine)

    # ------------------------------------------------------------------ names
    @property
    def trains(self) -> bool:
        return self.spec.model.train is not None

    @property
    def train_job(self) -> str:
        return naming.train_job_name(self.owner.name, self.training)

    @property
    def compute_capabilities(self) -> list[str | None]:
        """One entry per conversion Job: each capability for tensorrt, a single None otherwise."""
        if str(self.spec.engine.backend) == Backend.TENSORRT:
            return list(self.spec.engine.compute_capabilities)
        return [None]

    def convert_job(self, compute_capability: str | None) -> str:
        return naming.convert_job_name(self.owner.name, self.engine, compute_capability)

    @property
    def convert_jobs(self) -> dict[str, str | None]:
        return {self.convert_job(cc): cc for cc in self.compute_capabilities}

    @property
    def predictor(self) -> str:
        return naming.predictor_name(self.owner.name)

    @property
    def service(self) -> str:
        return naming.service_name(self.owner.name)

    @property
    def url(self) -> str:
        return f"http://{self.service}.{self.owner.namespace}.svc:8080"


def storage_uri_of(spec: ModelDeploymentSpec, settings: OperatorSettings) -> str:
    """The spec's store; the schema's default value stands for "the operator's default store".

    The API server fills schema defaults in, so an unset spec.storage.uri arrives as the default value.
    """
    declared = spec.storage.uri
    if declared == Storage.model_fields["uri"].default:
        return settings.storage_uri
    return declared


def storage_secret_of(
    spec: ModelDeploymentSpec, settings: OperatorSettings, storage_uri: str
) -> tuple[str, str] | None:
    """(Secret name, what names it) of the credentials pods get as environment, or None.

    spec.storage.secretRef wins; an s3:// store without one gets the operator's default
    TRTFORGE_STORAGE_SECRET (the chart's storage.s3.existingSecret). pvc:// stores need no credentials.
    """
    if spec.storage.secret_ref is not None:
        return spec.storage.secret_ref.name, "spec.storage.secretRef.name"
    if settings.storage_secret and storage_uri.startswith("s3://"):
        return settings.storage_secret, "TRTFORGE_STORAGE_SECRET"
    return None
