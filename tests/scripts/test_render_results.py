# ruff: noqa: RUF001, RUF003  (figures use the en dash of "min–max" and the sign ×)
"""scripts/render_results.py: tables and inline figures rendered into the docs, drift caught by --check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.results import write

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "render_results.py"

DOC = """# Title

Before.

<!-- results:demo.main -->
stale line
<!-- /results -->

Speed is <!--r:demo.speed-->old<!--/r--> on <!--r:demo.@machine-->?<!--/r-->
(<!--r:demo.@runs--><!--/r--> runs).
"""


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(DOC)
    (tmp_path / "docs" / "other.md").write_text("No markers here.\n")
    write(
        "demo",
        command="python benchmarks/demo.py",
        runs=3,
        tables={"main": {"columns": ["server", "req/s"], "rows": [["ours", "10 (9–11, n=3)"], ["a|b", "5"]]}},
        values={"speed": "12.3 ms (11.8–13.0, n=3)"},
        directory=tmp_path / "benchmarks" / "results",
    )
    return tmp_path


def test_write_renders_tables_and_inline_values_then_check_passes(root: Path) -> None:
    done = run(root)
    assert done.returncode == 0, done.stderr
    text = (root / "README.md").read_text()
    assert "stale line" not in text
    assert (
        "<!-- results:demo.main -->\n"
        "| server | req/s |\n|---|---|\n| ours | 10 (9–11, n=3) |\n| a\\|b | 5 |\n"
        "<!-- /results -->\n"
    ) in text
    assert "Speed is <!--r:demo.speed-->12.3 ms (11.8–13.0, n=3)<!--/r-->" in text
    assert "(<!--r:demo.@runs-->3<!--/r--> runs)" in text
    assert text.startswith("# Title\n\nBefore.\n")
    assert (root / "docs" / "other.md").read_text() == "No markers here.\n"
    # rendering is idempotent and --check agrees
    again = run(root)
    assert again.returncode == 0 and again.stdout == ""
    assert run(root, "--check").returncode == 0


def test_check_fails_with_a_diff_and_changes_nothing(root: Path) -> None:
    before = (root / "README.md").read_text()
    done = run(root, "--check")
    assert done.returncode == 1
    assert "--- README.md" in done.stdout and "-stale line" in done.stdout
    assert "+| ours | 10 (9–11, n=3) |" in done.stdout
    assert "do not match" in done.stderr
    assert (root / "README.md").read_text() == before


def test_check_catches_a_hand_edited_figure(root: Path) -> None:
    assert run(root).returncode == 0
    readme = root / "README.md"
    readme.write_text(readme.read_text().replace("12.3 ms (11.8", "9.9 ms (11.8"))
    done = run(root, "--check")
    assert done.returncode == 1 and "9.9 ms" in done.stdout


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("<!--r:nothere.speed-->x<!--/r-->", "README.md:3: no result 'nothere'"),
        (
            "<!--r:demo.nokey-->x<!--/r-->",
            "README.md:3: result 'demo' has no value 'nokey' (its values: speed)",
        ),
        ("<!-- results:demo.notable -->\n<!-- /results -->", "has no table 'notable' (its tables: main)"),
        ("<!-- results:demo.main -->\nno end", "has no closing <!-- /results -->"),
        ("<!--r:demo-->x<!--/r-->", "must be NAME.KEY"),
        ("<!--r:demo.@colour-->x<!--/r-->", "unknown key '@colour'"),
    ],
)
def test_a_marker_naming_something_missing_is_a_clear_error(root: Path, marker: str, message: str) -> None:
    (root / "README.md").write_text(f"# T\n\n{marker}\n")
    for args in ((), ("--check",)):
        done = run(root, *args)
        assert done.returncode == 2
        assert message in done.stderr
    assert (root / "README.md").read_text() == f"# T\n\n{marker}\n"


def test_the_repository_docs_match_the_committed_results() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stdout + done.stderr
