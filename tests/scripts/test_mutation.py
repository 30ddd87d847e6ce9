"""scripts/mutation.py: what it copies, which tests it selects, and how it records the counts.

(mutmut itself runs in CI through `bash scripts/mutation.sh --fast`; these tests cover the script's own
logic without running mutmut.)
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_script", REPO / "scripts" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_script"] = module
    spec.loader.exec_module(module)
    return module


mutation = load_script()


def entry(mutants: int, survivors: dict[str, str], files: list[str]) -> dict[str, object]:
    return {
        "files": files,
        "tests": ["tests/x.py"],
        "counts": {"killed": mutants - len(survivors), **({"survived": len(survivors)} if survivors else {})},
        "mutants": mutants,
        "survivors": survivors,
        "seconds": 1.0,
    }


def test_every_module_names_existing_files_and_tests() -> None:
    for name, module in mutation.MODULES.items():
        for path in module.files:
            package, _, rest = path.partition("/")
            assert (REPO / mutation.PACKAGES[package] / rest).is_file(), (name, path)
        assert mutation.test_files(module, REPO), name
    assert mutation.FAST in mutation.MODULES


def test_a_module_without_tests_is_an_error(tmp_path: Path) -> None:
    module = mutation.Module(("trtforge_runtime/x.py",), ("tests/nothing_*.py",))
    with pytest.raises(SystemExit, match="no test file matches"):
        mutation.test_files(module, tmp_path)


def test_the_copy_has_the_work_tree_and_the_packages_at_the_top(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for rel in ("runtime/trtforge_runtime/a.py", "operator/trtforge_operator/b.py", "tests/t.py", "junk.log"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(rel)
    (repo / ".gitignore").write_text("*.log\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "runtime", ".gitignore"], check=True)
    (repo / "untracked.txt").write_text("new")  # untracked but not ignored: copied too
    dest = tmp_path / "copy"
    mutation.copy_tree(repo, dest)
    assert (dest / "trtforge_runtime" / "a.py").read_text() == "runtime/trtforge_runtime/a.py"
    assert (dest / "trtforge_operator" / "b.py").is_file()
    assert (dest / "runtime" / "trtforge_runtime" / "a.py").is_file()
    assert (dest / "untracked.txt").is_file() and (dest / "tests" / "t.py").is_file()
    assert not (dest / "junk.log").exists()


def test_mutmut_config_restricts_mutation_and_tests() -> None:
    module = mutation.MODULES["batcher"]
    text = mutation.mutmut_config(module, ["tests/runtime/serve/test_batcher.py"])
    assert 'only_mutate = ["trtforge_runtime/serve/batcher.py"]' in text
    assert 'pytest_add_cli_args_test_selection = ["tests/runtime/serve/test_batcher.py"]' in text
    assert '"not slow and not gpu and not e2e"' in text


def test_diff_lines_keeps_the_changed_lines() -> None:
    show = "--- a.py\n+++ a.py\n@@ -1 +1 @@\n-    if x >= 2:\n+    if x > 2:\n"
    assert mutation.diff_lines(show) == "- if x >= 2: | + if x > 2:"


def test_record_writes_counts_and_keeps_modules_not_run(tmp_path: Path) -> None:
    a = entry(100, {"m1": "survived: - a | + b"}, ["trtforge_operator/autoscaling/algorithm.py"])
    mutation.record({"autoscaler": a}, "bash scripts/mutation.sh autoscaler", False, tmp_path)
    before = entry(100, {"m1": "x", "m2": "y", "m3": "z"}, a["files"])  # type: ignore[arg-type]
    mutation.record({"autoscaler": before}, "bash scripts/mutation.sh --baseline", True, tmp_path)
    b = entry(10, {}, ["trtforge_runtime/serve/batcher.py"])
    b["counts"] = {"killed": 9, "timeout": 1}  # a mutant the tests hang on is detected too
    path = mutation.record({"batcher": b}, "bash scripts/mutation.sh batcher", False, tmp_path)
    doc = json.loads(path.read_text())
    assert doc["tables"]["modules"]["rows"] == [
        ["`batcher`", "`batcher.py`", "10", "9", "1", "0", "100.0 %", ""],
        ["`autoscaler`", "`algorithm.py`", "100", "99", "0", "1", "99.0 %", "3"],
    ]
    assert doc["values"] == {
        "batcher_survived": "0",
        "autoscaler_survived": "1",
        "survived": "1",
        "mutants": "110",
    }
    assert doc["data"]["commands"]["baseline:autoscaler"] == "bash scripts/mutation.sh --baseline"
    assert doc["versions"]["mutmut"]
