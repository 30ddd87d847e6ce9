"""The endpoints controller: each Service's Endpoints from the pods its selector matches.

Ready pods are `addresses`, the others `notReadyAddresses` (all of them when the Service sets
`publishNotReadyAddresses`); a terminating pod (deletionTimestamp set) is dropped at once, which is what
lets a server's shutdown delay drain traffic before SIGTERM. A named `targetPort` is resolved in each
pod's container ports. Returns the routing table the Service proxies use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cluster_box.api import Api
from cluster_box.jobs import _ready


@dataclass(frozen=True)
class Route:
    """One Service port: where the proxy listens (service port) and the ready endpoints behind it."""

    namespace: str
    service: str
    name: str
    port: int
    backends: tuple[tuple[str, int], ...]


def _matches(selector: dict[str, str], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _target(pod: dict[str, Any], target: Any) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None


class EndpointsController:
    def sync(self, api: Api) -> list[Route]:
        routes: list[Route] = []
        pods = api.list("v1", "Pod")
        services = api.list("v1", "Service")
        wanted = set()
        for svc in services:
            selector = (svc.get("spec") or {}).get("selector")
            if not selector or svc["metadata"].get("deletionTimestamp"):
                continue
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            wanted.add((ns, name))
            publish_all = bool(svc["spec"].get("publishNotReadyAddresses"))
            chosen = [
                p
                for p in pods
                if p["metadata"]["namespace"] == ns
                and _matches(selector, p["metadata"].get("labels"))
                and (p.get("status") or {}).get("podIP")
                and (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
            ]
            subsets: dict[tuple[tuple[str, int], ...], dict[str, Any]] = {}
            for svc_port in svc["spec"].get("ports") or []:
                backends = []
                for pod in chosen:
                    port = _target(pod, svc_port.get("targetPort", svc_port["port"]))
                    if port is None:
                        continue
                    ready = _ready(pod) or publish_all
                    key = ((svc_port.get("name", ""), port),)
                    subset = subsets.setdefault(key, {"addresses": [], "notReadyAddresses": [], "ports": []})
                    if not subset["ports"]:
                        entry = {
                            "name": svc_port.get("name"),
                            "port": port,
                            "protocol": svc_port.get("protocol", "TCP"),
                        }
                        if svc_port.get("appProtocol"):
                            entry["appProtocol"] = svc_port["appProtocol"]
                        subset["ports"].append({k: v for k, v in entry.items() if v is not None})
                    address = {
                        "ip": pod["status"]["podIP"],
                        "targetRef": {
                            "kind": "Pod",
                            "namespace": ns,
                            "name": pod["metadata"]["name"],
                            "uid": pod["metadata"]["uid"],
                        },
                    }
                    subset["addresses" if ready else "notReadyAddresses"].append(address)
                    if ready:
                        backends.append((pod["status"]["podIP"], port))
                if svc["spec"].get("clusterIP") != "None":
                    routes.append(
                        Route(
                            ns, name, svc_port.get("name", ""), int(svc_port["port"]), tuple(sorted(backends))
                        )
                    )
            self._write(api, svc, [{k: v for k, v in s.items() if v} for s in subsets.values()])
        for ep in api.list("v1", "Endpoints"):
            ep_key = (ep["metadata"]["namespace"], ep["metadata"]["name"])
            if (
                ep_key not in wanted
                and ep["metadata"].get("labels", {}).get("cluster-box.trtforge.dev/endpoints") == "true"
            ):
                api.delete(ep)
        return routes

    @staticmethod
    def _write(api: Api, svc: dict[str, Any], subsets: list[dict[str, Any]]) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        current = api.get("v1", "Endpoints", name, ns)
        labels = {**(svc["metadata"].get("labels") or {}), "cluster-box.trtforge.dev/endpoints": "true"}
        if current is None:
            api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns, "labels": labels},
                    "subsets": subsets,
                }
            )
        elif (current.get("subsets") or []) != subsets:
            api.replace({**current, "subsets": subsets})
