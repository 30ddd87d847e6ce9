"""Mutation testing (mutmut) over the modules that decide; the surviving-mutant count goes to the results.

    bash scripts/mutation.sh                     # every module below -> benchmarks/results/mutation.json
    bash scripts/mutation.sh autoscaler batcher  # some modules; updates their rows in mutation.json
    bash scripts/mutation.sh --fast              # CI: the FAST module, fails if more mutants survive
                                                 # than mutation.json records (writes nothing)

mutmut never touches this checkout: the tracked and untracked (not ignored) files are copied to a
temporary folder, where the two packages are lifted to the top level (mutmut names a mutant after the
path of its file, which must match the module's import name), and mutmut runs there with the module's
own tests only (`pytest_add_cli_args_test_selection`). A mutant is *killed* when a selected test fails,
*survived* when all pass; the count per module is what to drive down (docs/testing.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import RESULTS_DIR, ResultsError, load, write  # noqa: E402

PACKAGES = {"trtforge_runtime": "runtime/trtforge_runtime", "trtforge_operator": "operator/trtforge_operator"}


@dataclasses.dataclass(frozen=True)
class Module:
    """One unit of mutation: the files mutated and the tests (globs) that must kill the mutants."""

    files: tuple[str, ...]
    tests: tuple[str, ...]
    pytest_args: tuple[str, ...] = ("-m", "not slow and not gpu and not e2e")


MODULES: dict[str, Module] = {
    "gate": Module(
        ("trtforge_runtime/convert/gate.py",),
        ("tests/runtime/convert/test_gate*.py", "tests/runtime/convert/test_transforms.py"),
    ),
    "precision": Module(
        ("trtforge_runtime/convert/precision.py",),
        ("tests/runtime/convert/test_precision*.py", "tests/runtime/convert/test_transforms.py"),
    ),
    "batcher": Module(
        ("trtforge_runtime/serve/batcher.py",),
        ("tests/runtime/serve/test_batcher*.py",),
    ),
    "autoscaler": Module(
        ("trtforge_operator/autoscaling/algorithm.py",),
        ("tests/operator/autoscaling/test_algorithm*.py",),
    ),
    "status": Module(
        ("trtforge_operator/status.py", "trtforge_operator/errors.py"),
        (
            "tests/operator/test_status*.py",
            "tests/operator/test_failure_table.py",
            "tests/operator/test_errors.py",
        ),
    ),
    "crd": Module(
        ("trtforge_runtime/spec/crd.py", "trtforge_runtime/spec/rules.py"),
        ("tests/runtime/spec/test_crd*.py", "tests/runtime/spec/test_rules*.py"),
    ),
}
FAST = "autoscaler"  # what CI runs: about 300 mutants in well under a minute of two cores


def copy_tree(source: Path, dest: Path) -> None:
    """A checkout's tracked and untracked-but-not-ignored files, as they are now, under `dest`."""
    listed = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = raw.decode()
        src = source / rel
        if not src.is_file():  # deleted in the work tree
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    for package, path in PACKAGES.items():
        shutil.copytree(dest / path, dest / package)


def test_files(module: Module, root: Path) -> list[str]:
    tests = sorted({str(p.relative_to(root)) for pattern in module.tests for p in root.glob(pattern)})
    if not tests:
        raise SystemExit(f"mutation: no test file matches {module.tests}")
    return tests


def mutmut_config(module: Module, tests: list[str]) -> str:
    lines = [
        "",
        "[tool.mutmut]",
        f"source_paths = {json.dumps(list(PACKAGES))}",
        f"only_mutate = {json.dumps(list(module.files))}",
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        f"pytest_add_cli_args = {json.dumps(['-p', 'no:cacheprovider', *module.pytest_args])}",
        'also_copy = ["examples", "crds", "charts", "scripts", "docs", "benchmarks", "README.md"]',
        "",
    ]
    return "\n".join(lines)


RESULT_LINE = re.compile(r"^\s*(?P<name>\S+): (?P<status>.+?)\s*$")


def run_module(name: str, module: Module, args: argparse.Namespace) -> dict[str, object]:
    """mutmut over one module in a fresh copy; {'counts': {...}, 'survivors': {...}, 'seconds': s}."""
    tmp = Path(tempfile.mkdtemp(prefix=f"trtforge-mutation-{name}-"))
    keep = args.keep
    try:
        root = tmp / "tree"
        copy_tree(args.source.resolve(), root)
        for pattern in args.without:
            for path in root.glob(pattern):
                path.unlink()
        pyproject = root / "pyproject.toml"
        tests = test_files(module, root)
        pyproject.write_text(pyproject.read_text() + mutmut_config(module, tests))
        # On the path from the start (so that test subprocesses import the mutants too); it must exist
        # before Python starts, or the import system caches it as missing.
        (root / "mutants").mkdir()
        env = {**os.environ, "PYTHONPATH": str(root / "mutants"), "PYTHONDONTWRITEBYTECODE": "1"}
        started = time.monotonic()
        run = subprocess.run(
            ["mutmut", "run", "--max-children", str(args.children)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
        seconds = time.monotonic() - started
        if run.returncode != 0:
            tail = (run.stdout + run.stderr)[-4000:]
            raise SystemExit(f"mutation: mutmut failed on {name} (exit {run.returncode}):\n{tail}")
        listed = subprocess.run(
            ["mutmut", "results", "--all", "true"], cwd=root, env=env, capture_output=True, text=True
        ).stdout
        statuses = {m["name"]: m["status"] for m in map(RESULT_LINE.match, listed.splitlines()) if m}
        if not statuses:
            raise SystemExit(f"mutation: mutmut made no mutant of {module.files}:\n{run.stdout[-4000:]}")
        survivors = sorted(n for n, s in statuses.items() if s not in DETECTED)
        details = show(survivors, root, env)
        if keep:
            print(f"mutation: kept {root}", file=sys.stderr)
        commit = subprocess.run(
            ["git", "-C", str(args.source), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        return {
            "commit": commit,
            "without": list(args.without),
            "files": list(module.files),
            "tests": tests,
            "counts": dict(Counter(statuses.values())),
            "mutants": len(statuses),
            "survivors": {n: f"{statuses[n]}: {diff_lines(details[n])}" for n in survivors},
            "seconds": round(seconds, 1),
        }
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


SHOW = """
import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
names = json.load(sys.stdin)
json.dump({n: get_diff_for_mutant(n, path=find_mutant(n).path) for n in names}, sys.stdout)
"""


def show(names: list[str], root: Path, env: dict[str, str]) -> dict[str, str]:
    """`mutmut show` of each mutant, in one process (mutmut's own diff of the mutant)."""
    if not names:
        return {}
    done = subprocess.run(
        [sys.executable, "-c", SHOW],
        input=json.dumps(names),
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return dict.fromkeys(names, f"(diff not available: {done.stderr.strip()[-300:]})")
    shown: dict[str, str] = json.loads(done.stdout)
    return shown


def diff_lines(diff: str) -> str:
    """The changed lines of a `mutmut show` diff, on one line."""
    out = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return " | ".join(" ".join(ln.split()) for ln in out)


# A mutant is detected when a test fails on it, or when the tests hang on it (mutmut's time-out: a CI
# run would time out too). Every other status (survived, no tests, suspicious...) is a survivor.
DETECTED = ("killed", "timeout")


def survived(entry: dict[str, object]) -> int:
    counts: dict[str, int] = entry["counts"]  # type: ignore[assignment]
    return sum(n for status, n in counts.items() if status not in DETECTED)


def record(
    modules: dict[str, dict[str, object]], command: str, baseline: bool, directory: Path | None = None
) -> Path:
    """benchmarks/results/mutation.json, keeping the rows of modules not run this time.

    `baseline`: the run is the reference to compare with (the tests before issue 15), kept apart.
    """
    try:
        stored = load("mutation", directory).get("data") or {}
    except ResultsError:
        stored = {}
    data: dict[str, dict[str, object]] = dict(stored.get("modules") or {})
    before: dict[str, dict[str, object]] = dict(stored.get("baseline") or {})
    (before if baseline else data).update(modules)
    commands: dict[str, str] = dict(stored.get("commands") or {})
    for name in modules:
        commands[("baseline:" if baseline else "") + name] = command
    ordered = {k: data[k] for k in MODULES if k in data}
    rows, values = [], {}
    for name, entry in ordered.items():
        counts: dict[str, int] = entry["counts"]  # type: ignore[assignment]
        killed = counts.get("killed", 0)
        total = int(entry["mutants"])  # type: ignore[call-overload]
        rows.append(
            [
                f"`{name}`",
                ", ".join(f"`{f.rsplit('/', 1)[-1]}`" for f in entry["files"]),  # type: ignore[union-attr]
                str(total),
                str(killed),
                str(counts.get("timeout", 0)),
                str(survived(entry)),
                f"{100.0 * (total - survived(entry)) / total:.1f} %",
                str(survived(before[name])) if name in before else "",
            ]
        )
        values[f"{name}_survived"] = str(survived(entry))
    for name in MODULES:
        if name in before and name not in ordered:  # measured before, not (yet) since
            files = ", ".join(f"`{f.rsplit('/', 1)[-1]}`" for f in MODULES[name].files)
            rows.append([f"`{name}`", files, "", "", "", "not run since", "", str(survived(before[name]))])
    values["survived"] = str(sum(survived(e) for e in ordered.values()))
    values["mutants"] = str(sum(int(e["mutants"]) for e in ordered.values()))  # type: ignore[call-overload]
    return write(
        "mutation",
        command=command,
        runs=1,
        tables={
            "modules": {
                "columns": [
                    "module",
                    "files",
                    "mutants",
                    "killed",
                    "timed out",
                    "survived",
                    "detected",
                    "survived before",
                ],
                "rows": rows,
            }
        },
        values=values,
        data={
            "tool": "mutmut",
            "modules": ordered,
            "baseline": {k: before[k] for k in MODULES if k in before},
            "commands": commands,
        },
        packages=["mutmut", "pytest"],
        directory=directory,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    p.add_argument("--fast", action="store_true", help=f"CI: only '{FAST}', compared with mutation.json")
    p.add_argument("--children", type=int, default=2, help="mutants tested in parallel")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per module")
    p.add_argument("--keep", action="store_true", help="keep the temporary copy (to inspect mutants)")
    p.add_argument("--no-record", action="store_true", help="print only; leave mutation.json alone")
    p.add_argument("--source", type=Path, default=REPO, help="checkout to copy (default: this one)")
    p.add_argument("--without", action="append", default=[], help="test files (glob) to leave out")
    p.add_argument("--baseline", action="store_true", help="record as the reference run ('before')")
    p.add_argument(
        "--results", type=Path, default=None, help="folder of mutation.json (default benchmarks/results)"
    )
    args = p.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        p.error(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")
    names = [FAST] if args.fast else (args.modules or list(MODULES))
    done: dict[str, dict[str, object]] = {}
    for name in names:
        entry = run_module(name, MODULES[name], args)
        done[name] = entry
        print(
            f"{name}: {entry['mutants']} mutants, {survived(entry)} survived ({entry['seconds']} s)",
            flush=True,
        )
        for mutant, what in entry["survivors"].items():  # type: ignore[union-attr]
            print(f"  {mutant}: {what}")
    if args.fast:
        try:
            recorded = load("mutation")["data"]["modules"][FAST]
        except (ResultsError, KeyError):
            print(f"mutation: no count of '{FAST}' in {RESULTS_DIR / 'mutation.json'}", file=sys.stderr)
            return 1
        now, before = survived(done[FAST]), survived(recorded)
        if now > before:
            print(f"mutation: {now} of '{FAST}' survive, {before} recorded: add tests", file=sys.stderr)
            return 1
        print(f"mutation: {now} surviving mutants of '{FAST}' (recorded: {before})")
        return 0
    if not args.no_record:
        command = "bash scripts/mutation.sh " + " ".join(argv if argv is not None else sys.argv[1:])
        print(f"wrote {record(done, command.strip(), args.baseline, args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
