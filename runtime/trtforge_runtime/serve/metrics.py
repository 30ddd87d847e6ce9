"""Prometheus metrics of the serving runtime, owned by one object with its own registry.

`trtforge_inflight_requests` is what the builtin autoscaler scrapes (concurrency per pod) and
`trtforge_requests_total` gives it request rates; the rest is for dashboards: latency and queue-time
histograms, the batch sizes the batcher formed, which backend/engine serves, and whether the reference
sample check passed. A fresh `ServeMetrics` per server keeps tests independent (no module globals).

With several worker processes (`trtforge serve --workers N`) prometheus-client's multiprocess mode holds
the values: each worker writes its samples to files under PROMETHEUS_MULTIPROC_DIR (set by the parent
before it starts the workers) and `/metrics`, whichever worker answers, sums the counters and histograms
of all workers, `livesum`s the in-flight and queue gauges (what the autoscaler reads: the pod's total),
takes the minimum of the ready gauges and the maximum of the draining one. Info metrics are not
supported there; every worker loads the same backend, so the answering worker's own is exposed.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
QUEUE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self._local = CollectorRegistry(auto_describe=True) if self.multiprocess_dir else self.registry
        r = self.registry
        self.requests = Counter(
            "trtforge_requests",
            "Inference requests by model, protocol and status code (HTTP codes; gRPC maps to them).",
            ["model", "protocol", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "trtforge_request_duration_seconds",
            "Inference request latency from decoded request to encoded response.",
            ["model", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "trtforge_queue_duration_seconds",
            "Time a request waited in the batching queue before its batch ran.",
            ["model"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.compute_time = Histogram(
            "trtforge_batch_compute_seconds",
            "Backend time per batch.",
            ["model"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "trtforge_batch_size",
            "Rows per batch run by the backend.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "trtforge_batch_requests",
            "Requests merged into one batch.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "trtforge_inflight_requests",
            "Inference requests being handled right now (queued or running); the autoscaler reads it.",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_depth = Gauge(
            "trtforge_queue_depth",
            "Requests waiting in the batching queue.",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ready = Gauge(
            "trtforge_model_ready",
            "1 when the model serves requests.",
            ["model"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.reference_ok = Gauge(
            "trtforge_reference_check_passed",
            "1 when the engine reproduced engine.json's referenceSample at start-up, 0 when it disagreed.",
            ["model", "backend"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.reference_diff = Gauge(
            "trtforge_reference_max_abs_diff",
            "Largest absolute output difference against engine.json's referenceSample.",
            ["model", "backend"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.backend_info = Info(
            "trtforge_backend", "Backend and engine serving each model.", ["model"], registry=self._local
        )
        self.draining = Gauge(
            "trtforge_draining",
            "1 after SIGTERM while in-flight requests finish.",
            registry=r,
            multiprocess_mode="livemax",
        )

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)
        return generate_latest(merged) + generate_latest(self._local)
