"""Publishing a conversion into its engine folder, safely when several Jobs share that folder.

With backend `tensorrt` the operator runs one convert Job per compute capability, each on a GPU of that
architecture, all writing the same engine folder on the shared artifact volume. So a folder whose
engine.json has the same fingerprint (same model digest, same engine spec) is extended, not refused: the
read-modify-write of engine.json runs under an exclusive lock (`fcntl.flock` on `.NAME.lock` beside the
folder; an O_EXCL lock file with stale-lock takeover where the filesystem has no locks), engine files are
linked/copied under a temporary name and renamed into place, and engine.json is replaced atomically
(temporary file, fsync, rename). The first writer creates the folder through `atomic_output_dir`.
A folder with a different fingerprint is refused untouched; an entry another Job already added is kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtforge_runtime.artifacts import atomic_output_dir, read_json, utc_now
from trtforge_runtime.convert.cache import place
from trtforge_runtime.errors import ArtifactError, ConversionError, OutputConflictError
from trtforge_runtime.trt import library

_log = logging.getLogger(__name__)
ENGINE_JSON = "engine.json"
LOCK_TIMEOUT_SECONDS = 900.0
STALE_LOCK_SECONDS = 300.0  # an O_EXCL lock older than this is a crashed holder's (a merge takes ms)
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


@dataclass(frozen=True)
class Placement:
    """A file to put into the folder: `source` (a cache entry's file) at `relative`."""

    source: Path
    relative: str


def lock_path(output: Path) -> Path:
    output = output.resolve()
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def output_lock(output: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the engine folder's exclusive lock (across processes and, on NFS v4 / CephFS, across nodes)."""
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        try:
            _flock(fd, path, timeout)
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise ArtifactError(f"cannot lock {path}: {exc}") from None
            _log.warning("%s: no file locks on this filesystem (%s); using an O_EXCL lock file", path, exc)
            with _excl_lock(path.with_name(path.name + ".excl"), timeout):
                yield
            return
        try:
            yield
        finally:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock(fd: int, path: Path, timeout: float) -> None:
    import fcntl

    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise ArtifactError(
                    f"engine folder lock {path} still held by another conversion after {timeout:.0f} s"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


@contextlib.contextmanager
def _excl_lock(path: Path, timeout: float, stale: float = STALE_LOCK_SECONDS) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o664)
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                age = time.time() - path.stat().st_mtime
                if age > stale:
                    _log.warning("removing stale lock %s (%.0f s old)", path, age)
                    # Rename first: only one of several contenders wins the takeover.
                    grave = path.with_name(f"{path.name}.stale-{os.getpid()}")
                    os.rename(path, grave)
                    grave.unlink(missing_ok=True)
                    continue
            if time.monotonic() > deadline:
                raise ArtifactError(
                    f"engine folder lock {path} still held by another conversion after {timeout:.0f} s"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "at": utc_now()}))
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace `path` with JSON `data`: unique temporary file in the same folder, fsync, rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def place_atomic(source: Path, dest: Path) -> None:
    """Put `source` at `dest` via a temporary name and a rename: readers never see a partial file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    try:
        place(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cc_order(cc: str) -> tuple[int, int]:
    return library.parse_compute_capability(cc)


def existing_document(output: Path, fp: str) -> dict[str, Any] | None:
    """None when OUTPUT is absent/empty; its engine.json when converted with fingerprint `fp`; else refuse.

    Every file engine.json names must be present (a folder someone damaged is reported, not extended).
    """
    if not output.exists():
        return None
    if not output.is_dir():
        raise ArtifactError(f"output {output} exists and is not a folder")
    if not any(output.iterdir()):
        return None
    doc_path = output / ENGINE_JSON
    if not doc_path.is_file():
        raise ArtifactError(
            f"output folder {output} is not empty and holds no engine.json; refusing to touch it"
        )
    doc = read_json(doc_path, ENGINE_JSON)
    if doc.get("fingerprint") != fp:
        raise OutputConflictError(
            f"output folder {output} already holds a different engine (engine.json from another model or "
            "engine spec); refusing to overwrite it: choose another output folder or remove it"
        )
    onnx = doc.get("onnxruntime", {})
    for rel in [e.get("file") for e in doc.get("engines", [])] + [
        onnx.get("file"),
        onnx.get("optimizedFile"),
    ]:
        if not rel or not (output / rel).is_file():
            raise ArtifactError(
                f"output folder {output} lacks {rel} named in its engine.json; remove the folder"
            )
    return doc


def merge_documents(current: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`current` extended by the engines of `new` it lacks; (merged document, capabilities added).

    Entries already in `current` win (never overwritten); engines stay sorted by compute capability.
    """
    have = {e["computeCapability"]: e for e in current.get("engines", [])}
    added = [e for e in new.get("engines", []) if e["computeCapability"] not in have]
    engines = sorted([*have.values(), *added], key=lambda e: cc_order(e["computeCapability"]))
    merged = dict(current)
    merged["engines"] = engines
    merged["computeCapabilities"] = [e["computeCapability"] for e in engines]
    merged["versions"] = {**new.get("versions", {}), **current.get("versions", {})}
    merged["updatedAt"] = utc_now()
    return merged, [e["computeCapability"] for e in added]


def publish(
    output: Path,
    fp: str,
    doc: dict[str, Any],
    engines: list[Placement],
    onnxruntime: list[Placement],
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
) -> tuple[dict[str, Any], list[str]]:
    """Write `doc` and its files into OUTPUT (new folder) or merge them into OUTPUT's engine.json.

    Returns (the engine.json now in OUTPUT, the compute capabilities this call added).
    Raises OutputConflictError (folder untouched) when OUTPUT holds another fingerprint,
    ConversionError when it was converted at another precision.
    """
    doc = dict(doc)
    doc["engines"] = sorted(doc["engines"], key=lambda e: cc_order(e["computeCapability"]))
    doc["computeCapabilities"] = [e["computeCapability"] for e in doc["engines"]]
    with output_lock(output, lock_timeout):
        current = existing_document(output, fp)
        if current is None:
            with atomic_output_dir(output, marker=ENGINE_JSON) as out:
                for p in [*engines, *onnxruntime]:
                    place(p.source, out / p.relative)
                write_json_atomic(out / ENGINE_JSON, doc)
            return doc, list(doc["computeCapabilities"])
        if current.get("precision") != doc["precision"]:
            raise ConversionError(
                f"output folder {output} holds {current.get('precision')} engines of the same model and "
                f"spec, but this run's gate chose {doc['precision']}; engines of one folder share a precision"
            )
        merged, added = merge_documents(current, doc)
        if not added:
            return current, []
        for p in engines:
            if any(p.relative == e["file"] for e in doc["engines"] if e["computeCapability"] in added):
                place_atomic(p.source, output / p.relative)
        for p in onnxruntime:  # identical for every Job of this fingerprint: reuse what is there
            if not (output / p.relative).is_file():
                place_atomic(p.source, output / p.relative)
        write_json_atomic(output / ENGINE_JSON, merged)
        _log.info("added %s to %s", ", ".join(added), output)
        return merged, added
