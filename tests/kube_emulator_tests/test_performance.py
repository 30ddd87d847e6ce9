"""The cost of a request must not grow with the number of requests served (kmock 0.8's did)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from kube_emulator.helpers import Kube
from kubernetes import client


def test_request_latency_does_not_grow(kube: Kube, api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "probe"}, "data": {"n": "0"}})

    def batch(n: int) -> list[float]:
        out = []
        for i in range(n):
            start = time.perf_counter()
            if i % 2:
                core.patch_namespaced_config_map("probe", "default", {"data": {"n": str(i)}})
            else:
                core.read_namespaced_config_map("probe", "default")
            out.append(time.perf_counter() - start)
        return out

    first = statistics.median(batch(200))
    batch(1600)
    last = statistics.median(batch(200))
    print(
        f"\nper-request latency (client round trip): first 200 median {first * 1000:.2f} ms, "
        f"after 2,000 requests median {last * 1000:.2f} ms"
    )
    assert last < max(first * 2, first + 0.003)  # kmock 0.8 grew fivefold over the same run
    assert last < 0.05
