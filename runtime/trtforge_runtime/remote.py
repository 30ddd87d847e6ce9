"""Artifact folders at remote URIs (s3://BUCKET/PREFIX, or any fsspec URI such as memory:// in tests).

With `spec.storage.uri: s3://...` the operator passes URIs instead of paths as `-o`, `--model` and
`--engine`. The stages keep working on local folders: an output is built in a local temporary folder
exactly as for a path, then uploaded file by file with the completion marker (`manifest.json`,
`engine.json`) uploaded LAST, so a reader never mistakes a partial upload for an artifact; an input is
downloaded once into a local cache folder (`$TRTFORGE_CACHE_DIR`, else `~/.cache/trtforge`) and its
digests / sizes checked against the marker before use. fsspec and the protocol's implementation (s3fs:
the `s3` extra) are imported only when a URI is used.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtforge_runtime.artifacts import sha256_file
from trtforge_runtime.errors import (
    ArtifactError,
    LibraryMissingError,
    RemoteStorageError,
    RemoteStorageUnavailableError,
    TrtforgeError,
)

CACHE_ENV = "TRTFORGE_CACHE_DIR"
MODEL_MARKER = "manifest.json"
ENGINE_MARKER = "engine.json"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# the extra that provides each protocol's fsspec implementation
_EXTRAS = {"s3": "s3", "s3a": "s3"}


def is_remote(value: object) -> bool:
    """True for a URI with a scheme other than file:// (a str; argparse gives Paths for local paths)."""
    return isinstance(value, str) and bool(_URI.match(value)) and not value.startswith("file://")


def path_or_uri(value: str) -> Path | str:
    """argparse `type` of -o/--model/--engine: a local Path, or the URI string unchanged."""
    if value.startswith("file://"):
        return Path(value.removeprefix("file://"))
    if _URI.match(value):
        return value
    return Path(value)


def cache_root() -> Path:
    """Local cache folder for downloads and (remote outputs') engine cache; created on first use."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "trtforge"
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:  # read-only home (restricted pods): the writable /tmp emptyDir instead
            root = Path(tempfile.gettempdir()) / "trtforge-cache"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _hint(exc: BaseException) -> str:
    text = f"{type(exc).__name__} {exc}".lower()
    if "credential" in text or "accessdenied" in text or isinstance(exc, PermissionError):
        return (
            " (check the credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL, "
            "from the Secret named by spec.storage.secretRef)"
        )
    return ""


# What retrying can fix, decided by the store's error. s3fs turns S3's error codes into Python's
# (s3fs/errors.py): NoSuchKey/NoSuchBucket/404 -> FileNotFoundError, AccessDenied/InvalidAccessKeyId/
# SignatureDoesNotMatch/ExpiredToken/403 -> PermissionError, RequestTimeout -> TimeoutError,
# SlowDown/ServiceUnavailable/OperationAborted/409/503 -> EBUSY, InternalError/500 -> EREMOTEIO, a code it
# does not know -> EIO, and requests it refuses (InvalidBucketName, 400, redirects to another region...)
# -> EINVAL/EPERM/ENOSYS/EREMCHG... Network failures arrive as ConnectionError / TimeoutError, as
# aiohttp's OSErrors with a socket errno (a negative one: name resolution) or, from botocore
# (EndpointConnectionError, ReadTimeoutError...), without an errno: not a known permanent kind.
_PERMANENT_TYPES = (
    FileNotFoundError,
    PermissionError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    TypeError,
    NotImplementedError,
)
_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EBUSY", "EREMOTEIO", "EIO", "EAGAIN", "ETIMEDOUT", "ECONNRESET", "ECONNREFUSED",
        "ECONNABORTED", "EHOSTUNREACH", "EHOSTDOWN", "ENETUNREACH", "ENETDOWN", "ENETRESET", "EPIPE",
    )
    if hasattr(errno, name)
)  # fmt: skip


def transient(exc: BaseException) -> bool:
    """True when the store's error may go away on another attempt (network, time-out, throttling, 5xx).

    Missing objects or buckets, denied access, missing or wrong credentials and refused requests are
    permanent. An error of a kind not known here counts as transient, like any unexpected error (exit 1):
    the Job's backoffLimit bounds the retries.
    """
    names = [cls.__name__.lower() for cls in type(exc).__mro__]
    if isinstance(exc, _PERMANENT_TYPES) or any("credential" in n for n in names):
        return False
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in _TRANSIENT_ERRNOS or exc.errno < 0  # < 0: getaddrinfo's (DNS) codes
    status = getattr(exc, "status", None)  # aiohttp's ClientResponseError: the HTTP status
    if isinstance(status, int) and 400 <= status < 500:
        return status in (408, 429)
    return True


@contextlib.contextmanager
def _storage_errors(uri: str, action: str) -> Iterator[None]:
    """Turn fsspec / botocore failures into RemoteStorageError naming the URI and what was being done:
    RemoteStorageUnavailableError (retried) when `transient` says another attempt may succeed."""
    try:
        yield
    except TrtforgeError:
        raise
    except FileNotFoundError as exc:
        raise RemoteStorageError(f"{action} {uri}: not found ({exc})") from None
    except Exception as exc:  # s3fs/botocore/aiohttp raise many types
        error = RemoteStorageUnavailableError if transient(exc) else RemoteStorageError
        raise error(f"{action} {uri}: {type(exc).__name__}: {exc}{_hint(exc)}".rstrip()) from None


def _json_object(raw: bytes, where: str) -> dict[str, Any]:
    """Parse a remote file's bytes as a JSON object, naming the file when it is not one."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RemoteStorageError(f"{where} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RemoteStorageError(f"{where} is not a JSON object")
    return data


@dataclass(frozen=True)
class RemoteFolder:
    """One folder at a remote URI, addressed through its fsspec filesystem."""

    uri: str
    fs: Any
    root: str  # the filesystem's path of the folder, no trailing slash

    @classmethod
    def open(cls, uri: str) -> RemoteFolder:
        scheme = uri.split("://", 1)[0].lower()
        extra = _EXTRAS.get(scheme, scheme)
        try:
            import fsspec
        except ImportError:
            raise LibraryMissingError(
                f"{uri}: remote artifact URIs need fsspec; install the extra: pip install 'trtforge[{extra}]'"
            ) from None
        try:
            fs, root = fsspec.core.url_to_fs(uri)
        except ImportError as exc:
            raise LibraryMissingError(
                f"{uri}: the {scheme}:// protocol needs the `{extra}` extra "
                f"(pip install 'trtforge[{extra}]'): {exc}"
            ) from None
        except ValueError as exc:  # unknown protocol
            raise RemoteStorageError(f"{uri}: unsupported storage URI: {exc}") from None
        with _storage_errors(uri, "cannot open"):
            return cls(uri.rstrip("/"), fs, str(root).rstrip("/"))

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def files(self) -> list[str]:
        """Relative paths of every file in the folder (empty when the folder does not exist)."""
        with _storage_errors(self.uri, "cannot list"):
            self.fs.invalidate_cache()
            if not self.fs.exists(self.root):
                return []
            found = self.fs.find(self.root, detail=False)
        prefix = self.root.rstrip("/") + "/"
        return sorted(str(p)[len(prefix) :] for p in found if str(p).startswith(prefix))

    def has(self, rel: str) -> bool:
        with _storage_errors(self.uri, "cannot check"):
            return bool(self.fs.isfile(self._path(rel)))

    def read_bytes(self, rel: str) -> bytes:
        with _storage_errors(f"{self.uri}/{rel}", "cannot read"):
            return bytes(self.fs.cat_file(self._path(rel)))

    def read_json(self, rel: str) -> dict[str, Any]:
        return _json_object(self.read_bytes(rel), f"{self.uri}/{rel}")

    def remove(self, rels: list[str], marker: str | None = None) -> None:
        """Delete these files; the marker first, so the folder reads as incomplete meanwhile."""
        ordered = sorted(rels, key=lambda r: r != marker)
        with _storage_errors(self.uri, "cannot delete from"):
            for rel in ordered:
                self.fs.rm_file(self._path(rel))

    def upload(self, local: Path, marker: str | None) -> list[str]:
        """Upload every file under `local`; `marker` (if present) last. Returns the uploaded paths."""
        rels = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        ordered = sorted(rels, key=lambda r: r == marker)
        with _storage_errors(self.uri, "cannot upload to"):
            for rel in ordered:
                self.fs.put_file(str(local / rel), self._path(rel))
        return ordered

    def put(self, local_file: Path, rel: str) -> None:
        with _storage_errors(f"{self.uri}/{rel}", "cannot upload"):
            self.fs.put_file(str(local_file), self._path(rel))

    def download(self, rels: list[str], local: Path) -> None:
        with _storage_errors(self.uri, "cannot download from"):
            for rel in rels:
                dest = local / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(self._path(rel), str(dest))


# ---- outputs -------------------------------------------------------------------------------------


def check_output(
    folder: RemoteFolder, marker: str, *, overwrite: bool, allow: list[str] | None = None
) -> None:
    """Refuse a remote output that already holds files, as atomic_output_dir does locally.

    `allow` lists folder contents that may be replaced without `overwrite` (train: a failed report).
    """
    files = folder.files()
    if not files or overwrite or (allow is not None and files == sorted(allow)):
        return
    what = f"an existing artifact ({marker})" if marker in files else "files (no completion marker)"
    raise ArtifactError(
        f"output {folder.uri} already holds {what}; refusing to overwrite it "
        "(pass --overwrite to replace it, or choose another URI)"
    )


def publish(local: Path, folder: RemoteFolder, marker: str) -> None:
    """Replace the remote folder's content with `local`'s: stale files gone, the marker uploaded last."""
    existing = folder.files()
    if existing:
        folder.remove(existing, marker=marker)
    folder.upload(local, marker)


@contextlib.contextmanager
def staging(prefix: str) -> Iterator[Path]:
    """A local temporary folder; yields the (not yet existing) output folder inside it."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp) / "out"


def _restate(exc: TrtforgeError, local: Path, uri: str) -> TrtforgeError:
    """The same error with the staging folder's path replaced by the URI (messages name what users gave)."""
    text = str(exc)
    for form in {str(local.resolve()), str(local)}:
        text = text.replace(form, uri)
    if text == str(exc):
        return exc
    new = type(exc)(text)
    new.__dict__.update(exc.__dict__)
    return new


@contextlib.contextmanager
def mirrored_output(uri: str, marker: str, prefix: str = "trtforge-") -> Iterator[Path]:
    """A local copy of a remote output folder to run a stage against; uploaded back on success.

    A complete remote folder (one with `marker`) is downloaded first, so the stage's own checks (same
    fingerprint: reuse or extend; else refuse) apply unchanged; a folder with files but no marker is
    refused. On success the files the stage added or changed are uploaded and the marker last, after
    checking that nobody else published to the URI meanwhile (then the stage must run again to merge).
    """
    folder = RemoteFolder.open(uri)
    files = folder.files()
    if files and marker not in files:
        raise RemoteStorageError(
            f"output {uri} holds files but no {marker} (an interrupted upload, or not a trtforge "
            "artifact); refusing to touch it: remove it or choose another URI"
        )
    before = folder.read_bytes(marker) if files else None
    with staging(prefix) as local:
        seen: dict[str, tuple[int, int]] = {}
        if files:
            folder.download(files, local)
            for rel in files:
                st = (local / rel).stat()
                seen[rel] = (st.st_size, st.st_mtime_ns)
        try:
            yield local
        except TrtforgeError as exc:
            raise _restate(exc, local, uri) from None
        if not (local / marker).is_file():
            return  # the stage published nothing
        changed = []
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            rel = path.relative_to(local).as_posix()
            st = path.stat()
            if rel != marker and seen.get(rel) != (st.st_size, st.st_mtime_ns):
                changed.append(rel)
        if (local / marker).read_bytes() == before and not changed:
            return  # up to date: nothing to upload

        def check_unchanged() -> None:
            now = folder.read_bytes(marker) if folder.has(marker) else None
            if now != before:
                raise RemoteStorageUnavailableError(
                    f"output {uri} was changed by another run while this one worked; "
                    "nothing of this run's marker was uploaded: run it again to reuse or extend that artifact"
                )

        check_unchanged()
        with _storage_errors(uri, "cannot upload to"):
            for rel in changed:
                folder.fs.put_file(str(local / rel), folder._path(rel))
        check_unchanged()
        folder.put(local / marker, marker)


def localize_convert_args(args: argparse.Namespace, stack: contextlib.ExitStack) -> argparse.Namespace:
    """`trtforge convert` flags with remote --model downloaded and a remote -o staged in a local mirror."""
    values = dict(vars(args))
    if is_remote(args.model):
        values["model"] = fetch_model(args.model)
    if is_remote(args.output):
        values["output"] = stack.enter_context(
            mirrored_output(args.output, ENGINE_MARKER, "trtforge-convert-")
        )
        if args.cache is None and not os.environ.get("TRTFORGE_ENGINE_CACHE"):
            values["cache"] = cache_root() / "engine-cache"  # not beside the temporary staging folder
    return argparse.Namespace(**values)


# ---- inputs --------------------------------------------------------------------------------------


def _verify_model(local: Path, doc: dict[str, Any], uri: str) -> None:
    digest = doc.get("digest")
    onnx = local / "model.onnx"
    if not onnx.is_file():
        raise RemoteStorageError(f"model folder {uri} has manifest.json but no model.onnx")
    if digest and sha256_file(onnx) != digest:
        raise RemoteStorageError(
            f"{uri}/model.onnx does not match the digest {digest} in its manifest.json "
            "(corrupt or replaced during download)"
        )


def _verify_engine(local: Path, doc: dict[str, Any], uri: str) -> None:
    named: list[tuple[Any, Any]] = [(e.get("file"), e.get("sizeBytes")) for e in doc.get("engines") or []]
    ort = doc.get("onnxruntime") or {}
    named.append((ort.get("file"), ort.get("sizeBytes")))
    for rel, size in named:
        if not rel:
            continue
        path = local / rel
        if not path.is_file():
            raise RemoteStorageError(f"engine folder {uri} lacks {rel} named in its engine.json")
        if isinstance(size, int) and path.stat().st_size != size:
            raise RemoteStorageError(
                f"{uri}/{rel} has {path.stat().st_size} bytes, engine.json says {size} (corrupt upload?)"
            )


def fetch(uri: str, marker: str, what: str) -> Path:
    """Download a remote artifact folder into the cache (reused while its marker is unchanged)."""
    folder = RemoteFolder.open(uri)
    files = folder.files()
    if not files:
        raise RemoteStorageError(f"{what} {uri} not found (no files under it)")
    if marker not in files:
        raise RemoteStorageError(
            f"{what} {uri} holds no {marker}: it is incomplete (an upload still running or interrupted) "
            "or not a trtforge artifact"
        )
    marker_bytes = folder.read_bytes(marker)
    doc = _json_object(marker_bytes, f"{uri}/{marker}")
    verify = _verify_model if marker == MODEL_MARKER else _verify_engine
    base = cache_root() / "remote"
    target = base / hashlib.sha256(folder.uri.encode()).hexdigest()[:24]
    cached = target / marker
    if cached.is_file() and cached.read_bytes() == marker_bytes:
        with contextlib.suppress(RemoteStorageError):
            verify(target, doc, uri)
            return target
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=base))
    try:
        folder.download([f for f in files if f != marker], tmp)
        if folder.read_bytes(marker) != marker_bytes:
            raise RemoteStorageUnavailableError(f"{uri} changed while it was being downloaded; try again")
        (tmp / marker).write_bytes(marker_bytes)
        verify(tmp, doc, uri)
        old = base / f".{target.name}.old-{os.getpid()}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def fetch_model(uri: str) -> Path:
    """A `trtforge train` output folder at `uri`, downloaded and digest-checked; its local path."""
    return fetch(uri, MODEL_MARKER, "model folder")


def fetch_engine(uri: str) -> Path:
    """A `trtforge convert` output folder at `uri`, downloaded and size-checked; its local path."""
    return fetch(uri, ENGINE_MARKER, "engine folder")
