"""Custom training code killed by a signal from outside it (trtforge_runtime.train.child).

SIGKILL (the kernel's OOM killer at the container's memory limit, in a pod), SIGTERM and SIGINT are
retried within the Job's backoffLimit (exit 12, TrainingKilled, transient), with a message that says
whether the OOM killer did it and what the memory limit is; any other signal stays a permanent
TrainingError (exit 9). Real child processes kill themselves; one test runs code into a real memory
cgroup limit, where the kernel's OOM killer kills it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from trtforge_runtime.errors import TrainingError, TrainingKilledError, failure_table
from trtforge_runtime.train import child

TrainCli = Callable[..., tuple[int, str, str]]
WriteManifest = Callable[..., Path]


# custom code job.py beside the manifest, run with this Python, in place of the architecture
CUSTOM = {
    "architecture": None,
    "custom": {"code": "job.py", "command": [sys.executable, "job.py"]},
    "epochs": 1,
}


def test_the_failure_table_retries_a_killed_run_and_fails_a_crash_at_once() -> None:
    table = failure_table()
    killed, crashed = table[TrainingKilledError.exit_code], table[TrainingError.exit_code]
    assert (killed.exit_code, killed.reason, killed.permanent) == (12, "TrainingKilled", False)
    assert (crashed.exit_code, crashed.permanent) == (9, True)
    assert issubclass(TrainingKilledError, TrainingError)  # callers that catch training failures still do
    assert {int(s) for s in child.RETRIED_SIGNALS} == {signal.SIGINT, signal.SIGKILL, signal.SIGTERM}


def test_code_that_is_sigkilled_exits_12_naming_memory_and_keeps_the_stored_model(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path, write_manifest: WriteManifest
) -> None:
    (tmp_path / "job.py").write_text(
        "import os, signal, sys\nprint('epoch 1/5', file=sys.stderr, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    models = tmp_path / "models"
    (models / "1").mkdir(parents=True)
    (models / "1" / "model.onnx").write_bytes(b"earlier")

    code, _, err = train_cli(write_manifest(CUSTOM), models / "2", "--overwrite")

    assert code == 12, err
    assert "job.py' was killed by signal 9 (SIGKILL) — out of memory?" in err
    assert "Raise spec.model.train.resources.memory" in err
    assert "no model was taken (in a cluster the training Job retries it, within its backoffLimit)" in err
    assert "epoch 1/5" in err  # the tail of the code's stderr
    report = json.loads(termination_log.read_text())
    assert report["ok"] is False and report["reason"] == "TrainingKilledError"
    assert report["customCode"] == "killed"
    assert sorted(p.name for p in models.iterdir()) == ["1"]
    assert (models / "1" / "model.onnx").read_bytes() == b"earlier"


def test_code_that_is_sigtermed_from_outside_is_retried_too(
    train_cli: TrainCli, termination_log: Path, tmp_path: Path, write_manifest: WriteManifest
) -> None:
    (tmp_path / "job.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    code, _, err = train_cli(write_manifest(CUSTOM), tmp_path / "out")
    assert code == 12, err
    assert "was killed by signal 15 (SIGTERM), sent from outside trtforge" in err
    assert "out of memory" not in err


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT])
def test_code_that_crashes_on_a_signal_stays_a_permanent_failure(
    sig: signal.Signals,
    train_cli: TrainCli,
    termination_log: Path,
    tmp_path: Path,
    write_manifest: WriteManifest,
) -> None:
    (tmp_path / "job.py").write_text(f"import os, signal\nos.kill(os.getpid(), signal.{sig.name})\n")
    code, _, err = train_cli(write_manifest(CUSTOM), tmp_path / "out")
    assert code == 9, err
    assert f"job.py' was killed by signal {int(sig)} ({sig.name}); no model was taken" in err
    assert json.loads(termination_log.read_text())["customCode"] == "exited"


# ------------------------------------------------------------------------------- the memory cgroup


def _cgroup_tree(root: Path, proc: Path, version: int, limit: str, oom_kills: int) -> None:
    if version == 2:
        own = root / "kubepods" / "pod1" / "ctr"
        own.mkdir(parents=True)
        (own / "memory.max").write_text(f"{limit}\n")
        (own / "memory.events").write_text(f"low 0\nhigh 0\nmax 7\noom {oom_kills}\noom_kill {oom_kills}\n")
        proc.write_text("0::/kubepods/pod1/ctr\n")
    else:
        own = root / "memory" / "ctr"
        own.mkdir(parents=True)
        (own / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (own / "memory.oom_control").write_text(f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kills}\n")
        proc.write_text("5:cpu,cpuacct:/ctr\n4:memory:/sandbox/ctr\n0::/\n")  # a longer path than the mount's


@pytest.mark.parametrize("version", [1, 2])
def test_the_cgroup_memory_limit_and_oom_kills_are_read(tmp_path: Path, version: int) -> None:
    proc = tmp_path / "cgroup"
    _cgroup_tree(tmp_path / "fs", proc, version, str(2 << 30), 3)
    got = child.MemoryCgroup.read(tmp_path / "fs", proc)
    assert (got.limit_bytes, got.oom_kills) == (2 << 30, 3)
    assert got.files == (
        "memory.max, memory.events" if version == 2 else "memory.limit_in_bytes, memory.oom_control"
    )


def test_no_cgroup_reads_as_unknown(tmp_path: Path) -> None:
    assert child.MemoryCgroup.read(tmp_path, tmp_path / "missing") == child.MemoryCgroup(None, None, "")


@pytest.mark.parametrize(
    ("before", "after", "words"),
    [
        (0, 1, ["the kernel's OOM killer killed it (memory.max, memory.events: oom_kill 0 -> 1)"]),
        (2, 2, ["no OOM kill was recorded in this container's cgroup, so something else sent it"]),
        (None, None, ["whether the kernel's OOM killer did it is not readable here", "no memory limit"]),
    ],
)
def test_the_sigkill_message_says_what_the_cgroup_saw(
    before: int | None, after: int | None, words: list[str]
) -> None:
    limit = None if before is None else 1536 << 20
    files = "" if before is None else "memory.max, memory.events"
    err = child.killed_error(
        "custom training code 'python job.py'",
        signal.SIGKILL,
        child.MemoryCgroup(limit, before, files),
        child.MemoryCgroup(limit, after, files),
        ["MemoryError"],
    )
    text = str(err)
    assert text.startswith(
        "custom training code 'python job.py' was killed by signal 9 (SIGKILL) — out of memory?"
    )
    for word in words:
        assert word in text, text
    if limit:
        assert "the memory limit is 1.5 GiB" in text
    assert text.endswith("last lines of its stderr:\n  MemoryError")
    assert getattr(err, "summary", None) == {"customCode": "killed"}


def test_an_unlimited_cgroup_says_no_limit() -> None:
    unlimited = child.MemoryCgroup(child.NO_LIMIT, 0, "memory.max, memory.events")
    assert "no memory limit is set" in str(child.killed_error("code", signal.SIGKILL, unlimited, unlimited))


# ------------------------------------------------------------------------------ a real OOM kill


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A fresh memory cgroup (v1 or v2) with a 256 MiB limit, removed afterwards; skips where this
    process may not create one (not root, no memory controller)."""
    name = f"trtforge-test-{uuid.uuid4().hex[:8]}"
    v1, v2 = Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")
    if (v1 / "memory.limit_in_bytes").is_file() or (v1 / "cgroup.procs").is_file():
        folder, limit_file = v1 / name, "memory.limit_in_bytes"
    elif "memory" in (
        (v2 / "cgroup.subtree_control").read_text() if (v2 / "cgroup.subtree_control").is_file() else ""
    ):
        folder, limit_file = v2 / name, "memory.max"
    else:
        pytest.skip("no cgroup memory controller to create a limited cgroup in")
    try:
        folder.mkdir()
        (folder / limit_file).write_text(str(256 << 20))
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup here: {exc}")
    try:
        yield folder
    finally:
        for pid in (folder / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        folder.rmdir()


RUN_IN_CGROUP = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from trtforge_runtime.errors import TrtforgeError
    from trtforge_runtime.train import custom

    hog = (
        "import sys\\nheld = []\\n"
        "for _ in range(128):\\n    held.append(bytearray(16 << 20))\\n"  # up to 2 GiB, bounded
        "print('survived 2 GiB', file=sys.stderr)\\n"
    )
    try:
        custom.run_code([sys.executable, "-c", hog], Path.cwd(), {"PATH": "/usr/bin:/bin"}, 120)
        print(json.dumps({"code": 0}))
    except TrtforgeError as exc:
        print(json.dumps({"code": exc.exit_code, "error": str(exc)}))
    """
)


def test_code_killed_by_the_oom_killer_at_the_memory_limit(memory_cgroup: Path, tmp_path: Path) -> None:
    """The run as in a pod: `trtforge train`'s process and the code share one memory cgroup; the code
    allocates past its limit and the kernel's OOM killer kills it (the biggest process), not trtforge."""
    procs = memory_cgroup / "cgroup.procs"
    done = subprocess.run(
        [sys.executable, "-c", RUN_IN_CGROUP],
        preexec_fn=lambda: procs.write_text(str(os.getpid())),  # in the cgroup before exec
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == TrainingKilledError.exit_code, result
    assert "was killed by signal 9 (SIGKILL) — out of memory?" in result["error"]
    assert "the kernel's OOM killer killed it" in result["error"] and "oom_kill 0 -> 1" in result["error"]
    assert "the memory limit is 256 MiB" in result["error"]
