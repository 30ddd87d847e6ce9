"""Writing artifacts safely, shared by train, convert and local.

Every stage writes its output folder through `atomic_output_dir`: a temporary sibling folder that is
renamed into place only when the stage completed, so an interrupted run leaves nothing half-written and
an existing artifact is never replaced silently. Digests, JSON files, library versions and the
Kubernetes termination message (how a Job reports its summary to the operator) live here too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from trtforge_runtime.errors import ArtifactError

TERMINATION_MESSAGE_ENV = "TRTFORGE_TERMINATION_MESSAGE_PATH"
TERMINATION_MESSAGE_LIMIT = 4096  # bytes Kubernetes keeps of a container's termination message


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """`sha256:<hex>` of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


def write_json(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, 2-space indent) via a temporary file and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, path)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Read a JSON object, raising ArtifactError naming `what` and the path when missing or corrupt."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{what} is unreadable or not JSON: {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{what} is not a JSON object: {path}")
    return data


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions (missing ones are left out), plus Python's."""
    out = {"python": platform.python_version()}
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


@contextlib.contextmanager
def atomic_output_dir(target: Path, *, overwrite: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `target`; on success it replaces `target` atomically.

    `target` may exist only if it is empty, or if `overwrite` is set. `marker` names the file whose
    presence means "a completed artifact lives here" (used in the refusal message).
    On an exception the temporary folder is removed and `target` is untouched.
    """
    target = target.resolve()
    if target.exists():
        if not target.is_dir():
            raise ArtifactError(f"output {target} exists and is not a folder")
        if any(target.iterdir()) and not overwrite:
            what = f"an existing artifact ({marker})" if marker and (target / marker).exists() else "files"
            raise ArtifactError(
                f"output folder {target} already holds {what}; refusing to overwrite it "
                "(pass --overwrite to replace it, or choose another folder)"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_termination_message(summary: dict[str, Any]) -> None:
    """Report a Job's outcome to the operator through the container's termination message.

    The operator sets TRTFORGE_TERMINATION_MESSAGE_PATH (normally /dev/termination-log) on the Jobs it
    creates and reads the message from the pod status, so it never needs to mount the artifact store.
    Without the variable this is a no-op. The JSON is cut to the 4 KiB Kubernetes keeps.
    """
    path = os.environ.get(TERMINATION_MESSAGE_ENV)
    if not path:
        return
    text = json.dumps(summary, sort_keys=True, separators=(",", ":"), default=_json_default)
    if len(text.encode()) > TERMINATION_MESSAGE_LIMIT:
        wanted = ("ok", "stage", "error", "digest", "uri")
        keep: dict[str, Any] = {k: summary[k] for k in wanted if k in summary}
        keep["truncated"] = True
        text = json.dumps(keep, sort_keys=True, separators=(",", ":"), default=_json_default)
    try:
        Path(path).write_text(text[:TERMINATION_MESSAGE_LIMIT])
    except OSError as exc:  # never fail a Job because the report could not be written
        print(f"warning: cannot write termination message to {path}: {exc}", file=sys.stderr)
