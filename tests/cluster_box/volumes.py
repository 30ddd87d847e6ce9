"""A pod's volumes as host folders, and container paths rewritten to them.

Kubernetes mounts each volume into the container's filesystem. The box runs containers as plain
processes of this machine, so instead it materialises every volume as a host folder and rewrites the
container paths that occur in the container's command, arguments and environment to those folders:

- `persistentVolumeClaim`: one folder per claim and namespace (`<root>/namespaces/NS/claims/NAME`), shared
  by every pod of the namespace that mounts it, and kept after the pods are gone. A claim that does not
  exist in the pod's namespace leaves the pod Pending (`Unschedulable`), as the scheduler does.
- `configMap` / `secret`: the keys (or `items`) written as files into a folder of the pod; a missing
  object leaves the pod Pending (kubelet: `FailedMount`), unless the volume is `optional`.
- `emptyDir`: a folder of the pod, deleted with it.
- the container's `terminationMessagePath`: a file of the pod (the kubelet mounts it too).
- the folders above mount points (`/mnt/pvc` above `/mnt/pvc/CLAIM`), which the container runtime
  creates: a folder of the pod holding a link to each mount below it (`PathMap.add_parents`).

Limitation: a path that the program builds itself (not one written into its command, arguments or
environment) is not rewritten, and read-only mounts are not enforced. A mount path that differs from
the path a stage is told to use is still caught: the stage then reads or writes a host path that does
not exist (or that it may not write).
"""

from __future__ import annotations

import base64
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster_box.api import Api


class VolumeError(Exception):
    """A volume cannot be set up yet; `reason` is what Kubernetes reports (Unschedulable, FailedMount)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class PathMap:
    """Container path -> host path, longest container path first; rewrites strings."""

    mounts: dict[str, str] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)  # folders above mount points (add_parents)

    def add(self, container_path: str, host_path: str | Path) -> None:
        self.mounts[container_path.rstrip("/") or "/"] = str(host_path)

    def host(self, container_path: str) -> str | None:
        """The host path of a container path under a mount, else None."""
        for mount in sorted(self.mounts, key=len, reverse=True):
            if container_path == mount or container_path.startswith(mount + "/"):
                return self.mounts[mount] + container_path[len(mount) :]
        return None

    def add_parents(self, folder: Path) -> None:
        """The folders above the mount points, such as /mnt/pvc above /mnt/pvc/CLAIM.

        The container runtime creates them in the container's filesystem, holding the mount points, so a
        program told the parent (the operator's TRTFORGE_PVC_ROOT=/mnt/pvc) finds each claim under it. Here
        each becomes a folder under `folder` holding a link per mount point below it. Only the parent
        itself is rewritten (`/mnt/pvc`, not `/mnt/pvc/other`): nothing else exists there in a container
        either, and `/etc` above `/etc/trtforge` must not hide the host's `/etc/ssl`.
        """
        for mount, host in self.mounts.items():
            parts = mount.strip("/").split("/")
            for depth in range(1, len(parts)):
                parent = "/" + "/".join(parts[:depth])
                if self.host(parent) is not None:  # inside another mount: that folder holds it
                    continue
                mirror = folder / parent.lstrip("/")
                link = mirror / parts[depth]
                mirror.mkdir(parents=True, exist_ok=True)
                if depth == len(parts) - 1 and not link.exists():
                    link.symlink_to(host)
                self.parents[parent] = str(mirror)

    def rewrite(self, text: str) -> str:
        """Replace every mount path that starts a path inside `text` (args, env values, shell scripts).

        A mount path counts only at a path boundary: `/artifacts` matches `/artifacts/x` and
        `--out=/artifacts`, not `/artifacts2` or `pvc://trtforge-artifacts/`. A parent of mount points
        (`add_parents`) counts only as a whole path.
        """
        if self.mounts:
            alternatives = "|".join(re.escape(m) for m in sorted(self.mounts, key=len, reverse=True))
            pattern = re.compile(rf"(?<![\w./-])({alternatives})(?=$|[/\s:;,='\"])")
            text = pattern.sub(lambda m: self.mounts[m.group(1)], text)
        if self.parents:
            alternatives = "|".join(re.escape(m) for m in sorted(self.parents, key=len, reverse=True))
            pattern = re.compile(rf"(?<![\w./-])({alternatives})(?=$|[\s:;,='\"])")
            text = pattern.sub(lambda m: self.parents[m.group(1)], text)
        return text


def claim_folder(root: Path, namespace: str, claim: str) -> Path:
    return root / "namespaces" / namespace / "claims" / claim


def _write_keys(folder: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chosen = {i["key"]: i.get("path") or i["key"] for i in items} if items else {k: k for k in data}
    for key, rel in chosen.items():
        if key not in data:
            raise VolumeError("FailedMount", f'configmap or secret references non-existent key "{key}"')
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[key])


def _object_data(obj: dict[str, Any]) -> dict[str, bytes]:
    out = (
        {k: str(v).encode() for k, v in (obj.get("data") or {}).items()} if obj["kind"] == "ConfigMap" else {}
    )
    if obj["kind"] == "Secret":
        out = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        out.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
    else:
        out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def check_claims(api: Api, pod: dict[str, Any]) -> None:
    """The scheduler's part: every claim the pod uses exists in its namespace (and gets bound)."""
    ns = pod["metadata"]["namespace"]
    for vol in pod["spec"].get("volumes") or []:
        pvc = vol.get("persistentVolumeClaim")
        if pvc is None:
            continue
        claim = api.get("v1", "PersistentVolumeClaim", pvc["claimName"], ns)
        if claim is None:
            raise VolumeError(
                "Unschedulable",
                f'0/1 nodes are available: persistentvolumeclaim "{pvc["claimName"]}" not found.',
            )
        if (claim.get("status") or {}).get("phase") != "Bound":  # the provisioner binds it at once
            requested = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
            api.set_status(
                claim,
                {
                    "phase": "Bound",
                    "accessModes": (claim.get("spec") or {}).get("accessModes") or ["ReadWriteOnce"],
                    "capacity": {"storage": requested.get("storage", "1Gi")},
                },
            )


def prepare(api: Api, pod: dict[str, Any], container: dict[str, Any], root: Path, pod_dir: Path) -> PathMap:
    """Host folders for the container's mounts (and its termination-message file) as a PathMap."""
    ns = pod["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    paths = PathMap()
    for mount in container.get("volumeMounts") or []:
        vol = volumes.get(mount["name"])
        if vol is None:
            raise VolumeError("FailedMount", f'volume "{mount["name"]}" is not declared by the pod')
        host = _volume_folder(api, ns, vol, root, pod_dir)
        if mount.get("subPath"):
            host = host / mount["subPath"]
            host.mkdir(parents=True, exist_ok=True)
        paths.add(mount["mountPath"], host)
    term = container.get("terminationMessagePath") or "/dev/termination-log"
    term_file = pod_dir / "termination" / container["name"]
    term_file.parent.mkdir(parents=True, exist_ok=True)
    term_file.write_bytes(b"")
    paths.add(term, term_file)
    paths.add_parents(pod_dir / "mount-parents")
    return paths


def _volume_folder(api: Api, ns: str, vol: dict[str, Any], root: Path, pod_dir: Path) -> Path:
    name = vol["name"]
    if "persistentVolumeClaim" in vol:
        folder = claim_folder(root, ns, vol["persistentVolumeClaim"]["claimName"])
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    if "emptyDir" in vol:
        folder = pod_dir / "empty-dir" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    for kind, key, name_key in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
        if key in vol:
            src = vol[key]
            obj = api.get("v1", kind, src[name_key], ns)
            folder = pod_dir / key / name
            if obj is None:
                if src.get("optional"):
                    folder.mkdir(parents=True, exist_ok=True)
                    return folder
                raise VolumeError(
                    "FailedMount",
                    f'MountVolume.SetUp failed for volume "{name}": '
                    f'{key.lower()} "{src[name_key]}" not found',
                )
            _write_keys(folder, _object_data(obj), src.get("items"))
            return folder
    raise VolumeError(
        "FailedMount", f'volume "{name}": the box supports claims, configMaps, secrets, emptyDirs'
    )


def remove_pod_folder(pod_dir: Path) -> None:
    shutil.rmtree(pod_dir, ignore_errors=True)
