"""The operator process's parts and who runs them: queue, pipeline, autoscaling loop, leader election.

Every replica watches (kopf's handlers feed `Controller.trigger` and the object cache); only the Lease
holder acts. Gaining the Lease activates the queue's workers (a full resync of every known object) and
starts the one operator-level autoscaling loop; losing it stops both at once. Graceful shutdown stops
acting first and then releases the Lease, so that a standby takes over within a retry period.
With TRTFORGE_LEADER_ELECTION=false the process acts from the start (one replica only).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from trtforge_runtime.errors import ManifestError
from trtforge_runtime.spec.load import parse_spec
from trtforge_runtime.spec.model import API_VERSION, KIND

from trtforge_operator import labels, storage
from trtforge_operator.apply import Kube
from trtforge_operator.autoscaling.controller import AutoscalingLoop, Decisions
from trtforge_operator.cache import CachedKube, ObjectStore
from trtforge_operator.controller import Controller, Key
from trtforge_operator.leader import LeaderElector, LeaseConfig
from trtforge_operator.pipeline import Pipeline
from trtforge_operator.plan import storage_uri_of
from trtforge_operator.probes import ProbeServer
from trtforge_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


class ObjectCache:
    """What kopf's watches delivered: every watched object by kind (`store`, which the reconciles read
    through `CachedKube`), and for the autoscaler the ModelDeployments, the serving Deployments by
    owner and the serving pods."""

    def __init__(self) -> None:
        self.store = ObjectStore()
        self.modeldeployments: dict[Key, dict[str, Any]] = self.store.table(API_VERSION, KIND)
        self.deployments: dict[Key, dict[str, Any]] = {}
        self.serving_pods: dict[Key, dict[str, dict[str, Any]]] = {}  # owner -> pod name -> pod
        self._claims: dict[Key, tuple[Any, frozenset[str]]] = {}  # key -> (resourceVersion, claims)

    def observe_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A pod's watch event: the serving (predictor) pods are kept for the autoscaler's ticks."""
        meta = body.get("metadata") or {}
        pod_labels = meta.get("labels") or {}
        if pod_labels.get("app.kubernetes.io/component") != "predictor":  # a stage Job's pod
            return
        key = (str(meta.get("namespace")), str(pod_labels.get(labels.MODELDEPLOYMENT)))
        pods = self.serving_pods.setdefault(key, {})
        if event_type == "DELETED":
            pods.pop(str(meta.get("name")), None)
        else:
            pods[str(meta.get("name"))] = dict(body)
        if not pods:
            del self.serving_pods[key]

    def claim_users(self, namespace: str, claim: str, settings: OperatorSettings) -> list[Key]:
        """The ModelDeployments of `namespace` whose pods mount `claim` (each spec parsed once per
        resourceVersion; one the schema refuses mounts nothing)."""
        for key in [k for k in self._claims if k not in self.modeldeployments]:
            del self._claims[key]  # deleted ModelDeployments
        users = []
        for key, body in list(self.modeldeployments.items()):
            if key[0] != namespace:
                continue
            version = body.get("metadata", {}).get("resourceVersion")
            cached = self._claims.get(key)
            if cached is None or cached[0] != version:
                try:
                    spec = parse_spec(body.get("spec"), source=f"ModelDeployment {key[0]}/{key[1]}")
                    claims = frozenset(storage.claims_in_use(spec, storage_uri_of(spec, settings)))
                except ManifestError:
                    claims = frozenset()
                cached = self._claims[key] = (version, claims)
            if claim in cached[1]:
                users.append(key)
        return users


class OperatorRuntime:
    def __init__(self, settings: OperatorSettings, kube: Kube) -> None:
        self.settings = settings
        self.kube = kube
        self.cache = ObjectCache()
        self.decisions: Decisions = {}
        # reconciles read from the watch caches and write to the API server
        self.pipeline = Pipeline(CachedKube(kube, self.cache.store), settings, decisions=self.decisions)
        self.controller = Controller(
            self.pipeline,
            concurrency=settings.worker_limit,
            resync_seconds=settings.resync_seconds,
            active=False,
        )
        self.autoscaling: AutoscalingLoop | None = None
        if settings.autoscaler_enabled:
            self.autoscaling = AutoscalingLoop(
                kube,
                settings,
                modeldeployments=self.cache.modeldeployments,
                deployments=self.cache.deployments,
                pods=self.cache.serving_pods,
                decisions=self.decisions,
                trigger=self.controller.trigger,
            )
        self.elector: LeaderElector | None = None
        if settings.leader_election:
            config = LeaseConfig(
                name=settings.lease_name,
                namespace=settings.lease_namespace,
                identity=settings.pod_name,
                lease_duration=settings.lease_duration_seconds,
                renew_deadline=settings.renew_deadline_seconds,
                retry_period=settings.retry_period_seconds,
            )
            self.elector = LeaderElector(
                kube, config, on_started_leading=self._lead, on_stopped_leading=self._stand_by
            )
        self.probes = ProbeServer(settings.health_port, self.describe)

    @property
    def leading(self) -> bool:
        return self.controller.active

    def describe(self) -> dict[str, Any]:
        if self.elector is not None:
            return self.elector.describe()
        return {"role": "leader", "identity": self.settings.pod_name, "holder": None, "lease": None}

    async def start(self) -> None:
        await self.probes.start()
        self.controller.start()
        if self.elector is None:
            self._lead()
        else:
            self.elector.start()
        self.probes.started = True

    async def stop(self) -> None:
        if self.elector is not None:
            await self.elector.stop(release=True)  # stops acting (_stand_by) before releasing
        self._stand_by()
        if self.autoscaling is not None:
            await self.autoscaling.stop()
        await self.controller.stop()
        await self.probes.stop()
        self.kube.close()

    def _lead(self) -> None:
        self.controller.activate()
        if self.autoscaling is not None:
            self.autoscaling.start()

    def _stand_by(self) -> None:
        self.controller.deactivate()
        if self.autoscaling is not None:
            self.autoscaling.cancel()
