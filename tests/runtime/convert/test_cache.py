"""The engine cache: keys, atomic entries, reuse without rewriting, corruption and races."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from trtforge_runtime.convert.cache import CacheKey, EngineCache, place
from trtforge_runtime.errors import ArtifactError

KEY = CacheKey("sha256:m", "sha256:n", "tensorrt-rtx", "1.7.1.116", "fp16", "8.9", (1, 8, 64), 256)


def test_key_covers_every_field() -> None:
    values = {KEY.value}
    changes: dict[str, Any] = {
        "model_digest": "sha256:other",
        "network_digest": "sha256:other",
        "backend": "tensorrt",
        "library_version": "1.8",
        "precision": "int8",
        "compute_capability": "8.6",
        "batch": (1, 8, 128),
        "workspace_mib": 512,
    }
    for field, value in changes.items():
        values.add(dataclasses.replace(KEY, **{field: value}).value)
    assert len(values) == len(changes) + 1
    assert KEY.value.startswith("tensorrt-rtx-sm89-fp16-")
    assert dataclasses.replace(KEY).value == KEY.value  # stable


def test_miss_then_hit_without_rewriting(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    calls = []

    def fill(d: Path) -> dict[str, Any]:
        calls.append(d)
        (d / "x.engine").write_bytes(b"engine bytes")
        return {"buildSeconds": 0.5}

    first = cache.get_or_build(KEY, fill)
    assert not first.hit and first.meta["buildSeconds"] == 0.5
    stat = (first.path / "x.engine").stat()
    second = cache.get_or_build(KEY, fill)
    assert second.hit and len(calls) == 1 and second.path == first.path
    again = (second.path / "x.engine").stat()
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert [p.name for p in tmp_path.iterdir()] == [KEY.value]


def test_failed_fill_leaves_nothing(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)

    def fill(d: Path) -> dict[str, Any]:
        (d / "x.engine").write_bytes(b"half an eng")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build(KEY, fill)
    assert list(tmp_path.iterdir()) == []
    assert cache.lookup(KEY) is None


def test_corrupt_entry_is_reported_not_rebuilt(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    entry = cache.get_or_build(KEY, lambda d: (d / "x.engine").write_bytes(b"good") and {})
    (entry.path / "x.engine").write_bytes(b"evil")
    with pytest.raises(ArtifactError, match="corrupt"):
        cache.get_or_build(KEY, lambda d: {})
    (entry.path / "meta.json").unlink()
    with pytest.raises(ArtifactError, match="incomplete"):
        cache.lookup(KEY)


def test_concurrent_builder_wins_race(tmp_path: Path) -> None:
    """Another process completes the same key while we build: we keep theirs and drop ours."""
    cache = EngineCache(tmp_path)
    other = EngineCache(tmp_path)

    def fill(d: Path) -> dict[str, Any]:
        other.get_or_build(KEY, lambda o: (o / "x.engine").write_bytes(b"theirs") and {})
        (d / "x.engine").write_bytes(b"ours")
        return {}

    entry = cache.get_or_build(KEY, fill)
    assert entry.hit and (entry.path / "x.engine").read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == [KEY.value]


def test_place_links_or_copies(tmp_path: Path) -> None:
    src = tmp_path / "a"
    src.write_bytes(b"data")
    place(src, tmp_path / "out" / "b")
    assert (tmp_path / "out" / "b").read_bytes() == b"data"
    assert os.stat(src).st_ino == os.stat(tmp_path / "out" / "b").st_ino
