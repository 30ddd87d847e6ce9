"""Prometheus metrics of the serving runtime, owned by one object with its own registry.

`trtforge_inflight_requests` is what the builtin autoscaler scrapes (concurrency per pod) and
`trtforge_requests_total` gives it request rates; the rest is for dashboards: latency and queue-time
histograms, the batch sizes the batcher formed, which backend/engine serves, and whether the reference
sample check passed. A fresh `ServeMetrics` per server keeps tests independent (no module globals).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
QUEUE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        )
        self.queue_depth = Gauge(
            "trtforge_queue_depth", "Requests waiting in the batching queue.", ["model"], registry=r
        )
        self.ready = Gauge("trtforge_model_ready", "1 when the model serves requests.", ["model"], registry=r)
        self.reference_ok = Gauge(
            "trtforge_reference_check_passed",
            "1 when the engine reproduced engine.json's referenceSample at start-up, 0 when it disagreed.",
            ["model", "backend"],
            registry=r,
        )
        self.reference_diff = Gauge(
            "trtforge_reference_max_abs_diff",
            "Largest absolute output difference against engine.json's referenceSample.",
            ["model", "backend"],
            registry=r,
        )
        self.backend_info = Info(
            "trtforge_backend", "Backend and engine serving each model.", ["model"], registry=r
        )
        self.draining = Gauge(
            "trtforge_draining", "1 after SIGTERM while in-flight requests finish.", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
