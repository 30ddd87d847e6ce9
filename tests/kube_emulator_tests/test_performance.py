"""The emulator keeps no per-request state: what it holds stays bounded however many requests it serves
(stock kmock 0.8 kept every request, and its per-request cost grew with them). The per-request latency
before and after 2,000 requests is a figure of benchmarks/emulator_bench.py, not asserted here."""

from __future__ import annotations

from typing import Any

from kube_emulator.emulator import Emulator
from kube_emulator.helpers import Kube
from kubernetes import client

HISTORY = 50


def test_what_the_server_holds_does_not_grow_with_the_requests_it_serves(kube: Kube, api: Any) -> None:
    def shrink(emu: Emulator) -> None:
        emu.store.history_size = HISTORY

    kube.call(shrink)
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "probe"}, "data": {"n": "0"}})

    def held(emu: Emulator) -> tuple[dict[Any, int], int]:
        history = {kind: len(events) for kind, events in emu.store.history.items()}
        return history, sum(len(objs) for objs in emu.store.objects.values())

    for i in range(1, 1001):
        core.patch_namespaced_config_map("probe", "default", {"data": {"n": str(i)}})
        assert core.read_namespaced_config_map("probe", "default").data == {"n": str(i)}
        if i == 200:
            after_200 = kube.call(held)
    history, objects = kube.call(held)
    assert history[("", "configmaps")] == HISTORY  # the ConfigMap events: the newest HISTORY only
    assert max(history.values()) <= HISTORY
    assert (history, objects) == after_200  # 1,600 requests later the server holds exactly as much
