"""How the user's training process ended when a signal from outside it killed it, and what to do.

A child of `trtforge train` killed by SIGKILL is, in a pod, almost always the kernel's OOM killer at the
container's memory limit (only the biggest process dies; `trtforge train` lives on to report it). That is
not a bug in the code the way a crash is, and the cluster does not treat it as one: Kubernetes counts an
`OOMKilled` container as an ordinary pod failure that the Job's backoffLimit retries, and Kubeflow's
training operator (restartPolicy ExitCode) retries exit codes 130, 137 and 143 (SIGINT, SIGKILL, SIGTERM)
while SIGSEGV (139) and ordinary exit codes are permanent. trtforge does the same: a child killed by one
of `RETRIED_SIGNALS` raises `TrainingKilledError` (transient in the failure table: the Job retries it within
its backoffLimit); any other signal, and any non-zero exit, stays a permanent `TrainingError`.

The message says whether the container's memory cgroup recorded an OOM kill while the code ran (its
`oom_kill` counter rose) and what the memory limit is, read from cgroup v2 (`memory.max`,
`memory.events`) or v1 (`memory.limit_in_bytes`, `memory.oom_control`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from trtforge_runtime.errors import TrainingKilledError

RETRIED_SIGNALS = frozenset({signal.SIGINT, signal.SIGKILL, signal.SIGTERM})
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a huge number (9223372036854771712)


@dataclass(frozen=True)
class MemoryCgroup:
    """The memory limit and OOM-kill count of the cgroup this process runs in (None: not readable)."""

    limit_bytes: int | None
    oom_kills: int | None
    files: str  # the files read, for the message ("memory.max, memory.events")

    @classmethod
    def read(cls, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> MemoryCgroup:
        """cgroup v2, else v1; the process's own cgroup first, then the mount's root (a container's
        cgroup namespace shows its own cgroup as the root). Nothing readable: all None."""
        v2, v1 = _own_paths(proc_cgroup)
        for folder in _candidates(root, v2):
            if (folder / "memory.max").is_file():
                limit = _number(_read(folder / "memory.max"))
                kills = _field(_read(folder / "memory.events"), "oom_kill")
                return cls(limit, kills, "memory.max, memory.events")
        for folder in _candidates(root / "memory", v1):
            if (folder / "memory.limit_in_bytes").is_file():
                limit = _number(_read(folder / "memory.limit_in_bytes"))
                kills = _field(_read(folder / "memory.oom_control"), "oom_kill")
                return cls(limit, kills, "memory.limit_in_bytes, memory.oom_control")
        return cls(None, None, "")


def raise_if_killed(where: str, returncode: int, before: MemoryCgroup, tail: list[str]) -> None:
    """Raise `TrainingKilledError` when the code's exit status (Popen's returncode: -N for signal N) says
    one of RETRIED_SIGNALS killed it; `before` is the cgroup as it was before the code started."""
    if returncode < 0 and -returncode in RETRIED_SIGNALS:
        raise killed_error(where, -returncode, before, MemoryCgroup.read(), tail)


def killed_error(
    where: str, signum: int, before: MemoryCgroup, after: MemoryCgroup, tail: list[str] | None = None
) -> TrainingKilledError:
    """The error for code killed by `signum`, with the cgroup `before` and `after` its run."""
    name = signal_name(signum)
    if signum == signal.SIGKILL:
        text = f"{where} was killed by {name} — out of memory? {_memory_words(before, after)}"
    else:
        text = f"{where} was killed by {name}, sent from outside trtforge (a node shutdown, preemption?)"
    text += "; no model was taken (in a cluster the training Job retries it, within its backoffLimit)"
    if tail:
        text += "\nlast lines of its stderr:\n  " + "\n  ".join(tail)
    err = TrainingKilledError(text)
    err.summary = {"customCode": "killed"}  # type: ignore[attr-defined]
    return err


def signal_name(number: int) -> str:
    """`signal 9 (SIGKILL)`: the number as the exit status shows it, and the name people know."""
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


def _memory_words(before: MemoryCgroup, after: MemoryCgroup) -> str:
    limit = (
        f"the memory limit is {_size(after.limit_bytes)}"
        if after.limit_bytes is not None and after.limit_bytes < NO_LIMIT
        else "no memory limit is set"
    )
    if after.oom_kills is None or before.oom_kills is None:
        seen = "whether the kernel's OOM killer did it is not readable here"
    elif after.oom_kills > before.oom_kills:
        counts = f"oom_kill {before.oom_kills} -> {after.oom_kills}"
        seen = f"the kernel's OOM killer killed it ({after.files}: {counts})"
    else:
        seen = "no OOM kill was recorded in this container's cgroup, so something else sent it"
    return (
        f"{seen}; {limit}. Raise spec.model.train.resources.memory, or use less memory (a smaller "
        "batchSize, data read in batches)"
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n % scale else f"{n // scale} {unit}"
    return f"{n} bytes"


def _own_paths(proc_cgroup: Path) -> tuple[str, str]:
    """(the cgroup v2 path, the v1 memory controller's path) of this process, "" when not listed."""
    v2 = v1 = ""
    for line in _read(proc_cgroup).splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _candidates(base: Path, own: str) -> list[Path]:
    """The process's cgroup folder under the mount: its whole path, then shorter and shorter tails of it
    (a cgroup namespace, or a sandbox, shows only the tail), then the mount's root."""
    parts = [p for p in own.split("/") if p]
    return [base.joinpath(*parts[i:]) for i in range(len(parts))] + [base]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _number(text: str) -> int | None:
    text = text.strip()
    if text == "max":
        return NO_LIMIT
    return int(text) if text.isdigit() else None


def _field(text: str, key: str) -> int | None:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None
