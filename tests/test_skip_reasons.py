"""A skipped test tells the reader where to go: every file its skip reason names is in this repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILE_NAME = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*\.(?:md|sh|yaml|py)\b")


def _skip_reasons() -> list[tuple[Path, str]]:
    out = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg == "reason":
                text = "".join(
                    part.value
                    for part in ast.walk(node.value)
                    if isinstance(part, ast.Constant) and isinstance(part.value, str)
                )
                out.append((path, text))
    return out


def test_skip_reasons_name_files_of_this_repository() -> None:
    reasons = _skip_reasons()
    assert any("docs/gpu-tests.md" in text for _, text in reasons)
    missing = [
        f"{path.relative_to(REPO)}: {name}"
        for path, text in reasons
        for name in FILE_NAME.findall(text)
        if "/" in name and not (REPO / name).exists()
    ]
    assert not missing, missing
