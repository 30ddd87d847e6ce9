"""The engine cache: every built artifact lives under a key of everything that determines its bytes.

The key covers the model digest (and the transformed network's digest), backend, library version,
precision, compute capability, batch profile and workspace limit. An existing key is reused as a cache hit
and never rebuilt or overwritten; a new entry is filled in a temporary folder inside the cache and renamed
into place only when complete (with a meta.json holding file digests), so an interrupted build leaves no
entry at all and a concurrent builder of the same key simply finds the winner's entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trtforge_runtime.artifacts import read_json, sha256_file, utc_now, write_json
from trtforge_runtime.errors import ArtifactError
from trtforge_runtime.trt.library import sm_tag

META = "meta.json"
CACHE_ENV = "TRTFORGE_ENGINE_CACHE"
STALE_TEMP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class CacheKey:
    """Everything an engine's bytes depend on."""

    model_digest: str
    network_digest: str
    backend: str
    library_version: str
    precision: str
    compute_capability: str  # "8.9", or "any" for the onnxruntime artifact
    batch: tuple[int, int, int]
    workspace_mib: int
    # the profiles of dynamic dimensions after the batch (spec.engine.inputs); empty: none
    dims: tuple[Any, ...] = ()

    @property
    def value(self) -> str:
        fields = asdict(self)
        if not self.dims:
            del fields["dims"]  # keys of engines without such profiles stay what they were
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:24]
        target = "any" if self.compute_capability == "any" else sm_tag(self.compute_capability)
        return f"{self.backend}-{target}-{self.precision}-{digest}"


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    meta: dict[str, Any]
    hit: bool

    def file(self, name: str) -> Path:
        return self.path / name


class EngineCache:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"engine cache folder {self.root} cannot be created: {exc}") from None
        now = time.time()
        for stale in self.root.glob(".tmp-*"):
            try:
                if now - stale.stat().st_mtime > STALE_TEMP_SECONDS:
                    shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                pass

    def lookup(self, key: CacheKey) -> CacheEntry | None:
        """The completed entry of `key`, its files checked against their recorded digests; else None."""
        path = self.root / key.value
        if not (path / META).is_file():
            if path.exists() and any(path.iterdir()):
                raise ArtifactError(
                    f"engine cache entry {path} is incomplete (no {META}); remove it to rebuild"
                )
            return None
        meta = read_json(path / META, "engine cache entry")
        for name, digest in meta.get("files", {}).items():
            f = path / name
            if not f.is_file() or sha256_file(f) != digest:
                raise ArtifactError(
                    f"engine cache entry {path} is corrupt ({name} is missing or does not match its digest); "
                    "remove the entry to rebuild it"
                )
        return CacheEntry(key.value, path, meta, hit=True)

    def get_or_build(self, key: CacheKey, fill: Callable[[Path], dict[str, Any]]) -> CacheEntry:
        """The entry of `key`: reused when present, else built by `fill(tmpdir)` and renamed into place.

        `fill` writes the artifact files into the folder it is given and returns metadata to record.
        """
        self._ensure_root()
        found = self.lookup(key)
        if found is not None:
            return found
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key.value}-", dir=self.root))
        try:
            meta = dict(fill(tmp))
            meta["key"] = key.value
            meta["keyFields"] = asdict(key)
            meta["createdAt"] = utc_now()
            meta["files"] = {
                str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()
            }
            write_json(tmp / META, meta)
            tmp.chmod(0o755)  # mkdtemp makes it private; serving pods of the same group read entries
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        final = self.root / key.value
        try:
            os.rename(tmp, final)  # fails when another builder's completed entry is already there
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            found = self.lookup(key)
            if found is None:
                raise ArtifactError(f"cannot place engine cache entry {final}") from None
            return found
        return CacheEntry(key.value, final, meta, hit=False)


def place(src: Path, dst: Path) -> None:
    """Put a cached file into an output folder: a hard link when possible (same filesystem), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
