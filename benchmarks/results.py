# ruff: noqa: RUF001, RUF002, RUF003  (figures use the en dash of "min–max" and the sign ×)
"""Benchmark results as files: every figure in README.md and docs/ comes from one of these.

A benchmark script measures, then calls `write(...)`; `scripts/render_results.py` puts the tables and
values into the docs between markers, and `bash scripts/generate.sh --check` (CI) fails when a committed
doc no longer matches the committed results.

    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # scripts run as `python benchmarks/x.py`
    from benchmarks.results import fmt, summarize, write

    write(
        "autoscaler",
        command="python benchmarks/autoscaler_bench.py --runs 5",
        runs=5,
        tables={"scrape": {"columns": ["pods", "CPU per scrape"], "rows": [["10", fmt(cpu_ms, "ms")]]}},
        values={"scrape_cpu": fmt(cpu_ms, "ms")},
        data={"scrape_cpu_ms": cpu_ms},
        packages=["aiohttp", "prometheus-client"],
    )

-> `benchmarks/results/autoscaler.json` with the date, the machine (CPU model, cores, memory, GPU via
nvidia-smi when there is one, OS, Python), the git commit, the versions of the named packages and the
number of runs next to the tables, values and raw data.

Markers in Markdown (README.md, docs/*.md):

    <!-- results:autoscaler.scrape -->
    (the rendered table goes here)
    <!-- /results -->

    Inline: one scrape costs <!--r:autoscaler.scrape_cpu-->27.1 ms (25.0–29.3, n=5)<!--/r--> of CPU.

Inline keys starting with `@` give the provenance: `@date`, `@machine`, `@runs`, `@command`, and `@source`
(how the figures were obtained: measured by the command, or where figures of an earlier run come from).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # a result's name: the JSON file's stem, no dots
KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # a table or value key (dots allowed after the name)

PROVENANCE_KEYS = ("@date", "@machine", "@runs", "@command", "@source")


class ResultsError(ValueError):
    """A result that cannot be written or rendered; the message names what is wrong."""


# ---------------------------------------------------------------------------------------------- statistics


def _numbers(values: Iterable[float]) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ResultsError("no values to summarize: a figure needs at least one run")
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise ResultsError(f"values must be finite numbers, got {bad[0]!r}")
    return out


def summarize(values: Iterable[float]) -> dict[str, float | int]:
    """Median, min, max, mean, n (and the sample standard deviation when n > 1) of the runs' values."""
    xs = _numbers(values)
    out: dict[str, float | int] = {
        "median": statistics.median(xs),
        "min": min(xs),
        "max": max(xs),
        "mean": statistics.fmean(xs),
        "n": len(xs),
    }
    if len(xs) > 1:
        out["stdev"] = statistics.stdev(xs)
    return out


def _auto_digits(x: float) -> int:
    """Decimals that give three significant digits (none for figures of 100 and above)."""
    if x == 0:
        return 0
    return max(0, 2 - math.floor(math.log10(abs(x))))


def number(x: float, digits: int | None = None) -> str:
    """One figure, with `digits` decimals or three significant digits."""
    d = _auto_digits(x) if digits is None else digits
    return f"{x:.{d}f}"


def fmt(values: Iterable[float], unit: str = "", digits: int | None = None) -> str:
    """'median unit (min–max, n=N)', e.g. '12.3 ms (11.8–13.0, n=5)'; a single run gives '12.3 ms (n=1)'.

    `digits` is the number of decimals for all three figures; by default the median's three significant
    digits decide it.
    """
    s = summarize(values)
    d = _auto_digits(float(s["median"])) if digits is None else digits
    sep = "" if unit in ("", "%", "×", "x") else " "
    median = f"{number(s['median'], d)}{sep}{unit}"
    if s["n"] == 1:
        return f"{median} (n=1)"
    return f"{median} ({number(s['min'], d)}–{number(s['max'], d)}, n={s['n']})"


# ---------------------------------------------------------------------------------------------- provenance


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    m = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.M)
    if m:
        return round(int(m.group(1)) / 2**20, 1)
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[str]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [", ".join(p.strip() for p in line.split(",")) for line in out.splitlines() if line.strip()]


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on: CPU model, cores, memory, GPUs (nvidia-smi), OS, Python."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpu": _gpus(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed version of each named distribution ('not installed' when it is not)."""
    out: dict[str, str] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(repo: Path = REPO) -> str | None:
    """HEAD's commit, with '+dirty' when the tracked files differ from it; None outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


# ---------------------------------------------------------------------------------------------- write / read


def _check_tables(tables: Mapping[str, Any]) -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = {}
    for tname, table in tables.items():
        if not KEY_RE.match(tname):
            raise ResultsError(f"table name {tname!r} must match {KEY_RE.pattern}")
        if not isinstance(table, Mapping) or set(table) != {"columns", "rows"}:
            raise ResultsError(f"table {tname!r} must be a mapping with exactly 'columns' and 'rows'")
        columns = list(table["columns"])
        if not columns or not all(isinstance(c, str) for c in columns):
            raise ResultsError(f"table {tname!r}: columns must be a non-empty list of strings")
        rows = [list(r) for r in table["rows"]]
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise ResultsError(f"table {tname!r} row {i}: {len(row)} cells for {len(columns)} columns")
            if not all(isinstance(c, str) for c in row):
                raise ResultsError(f"table {tname!r} row {i}: cells must be formatted strings, got {row!r}")
        out[tname] = {"columns": columns, "rows": rows}
    return out


def _check_values(values: Mapping[str, Any]) -> dict[str, str]:
    for key, value in values.items():
        if not KEY_RE.match(key):
            raise ResultsError(f"value key {key!r} must match {KEY_RE.pattern}")
        if not isinstance(value, str):
            raise ResultsError(f"value {key!r} must be a formatted string (use fmt()), got {value!r}")
    return dict(values)


def write(
    name: str,
    *,
    command: str,
    runs: int,
    tables: Mapping[str, Any] | None = None,
    values: Mapping[str, str] | None = None,
    data: Any = None,
    packages: Sequence[str] = (),
    directory: Path | None = None,
    recorded: Mapping[str, Any] | None = None,
) -> Path:
    """Write `<directory>/<name>.json` (default benchmarks/results/) and return its path.

    `tables`: {table: {"columns": [str, ...], "rows": [[str, ...], ...]}} — cells already formatted.
    `values`: {key: "formatted string"} for inline figures.  `data`: the raw measurements (any JSON).
    `recorded`: only for figures of an earlier run on another machine that were kept as its printout,
    not measured now: {"date", "machine", "versions", "source"} of that run replace this machine's, and
    the file says so (`"recorded": {...}`); a rerun of the benchmark replaces it.
    """
    if not NAME_RE.match(name):
        raise ResultsError(f"result name {name!r} must match {NAME_RE.pattern}")
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise ResultsError(f"runs must be a positive integer, got {runs!r}")
    if not command.strip():
        raise ResultsError("command must say how to reproduce the result")
    doc = {
        "benchmark": name,
        "command": command,
        "date": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "commit": git_commit(),
        "machine": machine(),
        "versions": versions(packages),
        "runs": runs,
        "tables": _check_tables(tables or {}),
        "values": _check_values(values or {}),
        "data": data,
    }
    if recorded is not None:
        missing = {"date", "machine", "source"} - set(recorded)
        if missing:
            raise ResultsError(f"recorded needs date, machine and source; missing {sorted(missing)}")
        doc.update(
            date=recorded["date"],
            commit=recorded.get("commit"),
            machine=dict(recorded["machine"]),
            versions=dict(recorded.get("versions") or {}),
            recorded={"source": recorded["source"], "written": doc["date"]},
        )
    folder = directory if directory is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def load(name: str, directory: Path | None = None) -> dict[str, Any]:
    """The stored result `name`; ResultsError naming the file when it is missing or malformed."""
    folder = directory if directory is not None else RESULTS_DIR
    path = folder / f"{name}.json"
    if not path.is_file():
        raise ResultsError(f"no result {name!r}: {path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    return doc


def machine_line(m: Mapping[str, Any]) -> str:
    """'Intel Xeon …, 2 cores, 7.8 GiB, NVIDIA H200' — the machine in one line for the docs."""
    parts = []
    if m.get("cpu") and m["cpu"] != "not recorded":
        parts.append(str(m["cpu"]))
    if m.get("cores"):
        parts.append(f"{m['cores']} cores")
    if m.get("memory_gib") is not None:
        parts.append(f"{m['memory_gib']} GiB")
    parts.extend(str(g).split(",")[0] for g in m.get("gpu") or [])
    return ", ".join(parts) or "machine not recorded"


def provenance(doc: Mapping[str, Any], key: str) -> str:
    """The text of an `@` key (`@date`, `@machine`, `@runs`, `@command`, `@source`) of a stored result."""
    if key == "@date":
        return str(doc.get("date", ""))[:10]
    if key == "@machine":
        return machine_line(doc.get("machine") or {})
    if key == "@runs":
        return str(doc.get("runs", ""))
    if key == "@command":
        return str(doc.get("command", ""))
    if key == "@source":
        recorded = doc.get("recorded")
        if recorded:
            return str(recorded.get("source", ""))
        return f"measured by `{doc.get('command', '')}`"
    raise ResultsError(f"unknown provenance key {key!r}; known: {', '.join(PROVENANCE_KEYS)}")
