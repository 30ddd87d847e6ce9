# ruff: noqa: RUF002, RUF003  (figures use the en dash of "min–max" and the sign ×)
"""Renders benchmark results (benchmarks/results/*.json) into README.md and docs/*.md.

    python scripts/render_results.py           # rewrite the docs in place (same as --write)
    python scripts/render_results.py --check   # exit 1 with a diff when a doc does not match the results

Markers (see benchmarks/results.py):

    <!-- results:NAME.TABLE -->
    | rendered | table |
    <!-- /results -->

    inline: <!--r:NAME.KEY-->12.3 ms (11.8–13.0, n=5)<!--/r-->
    (KEY may also be @date, @machine, @runs or @command: the result's provenance)

A marker that names a result or key that does not exist is an error (exit 2) naming the file and line.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import (  # noqa: E402
    PROVENANCE_KEYS,
    ResultsError,
    load,
    provenance,
)

TABLE_OPEN = re.compile(r"<!-- results:(?P<ref>[^ ]*) -->[ \t]*\n")
TABLE_CLOSE = "<!-- /results -->"
INLINE = re.compile(r"<!--r:(?P<ref>[^>]*?)-->(?P<body>.*?)<!--/r-->", re.S)
REF = re.compile(r"^(?P<name>[A-Za-z0-9_-]+)\.(?P<key>@?[A-Za-z0-9_][A-Za-z0-9_.-]*)$")


class RenderError(Exception):
    """A marker that cannot be rendered; the message names the file, the line and what is missing."""


@dataclass
class Results:
    """Result files, loaded once each."""

    directory: Path
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, name: str) -> dict[str, Any]:
        if name not in self.cache:
            self.cache[name] = load(name, self.directory)
        return self.cache[name]


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _split(ref: str, where: str) -> tuple[str, str]:
    m = REF.match(ref)
    if not m:
        raise RenderError(
            f"{where}: marker {ref!r} must be NAME.KEY (NAME: a file under benchmarks/results/)"
        )
    return m.group("name"), m.group("key")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: dict[str, Any]) -> str:
    """A result table as a Markdown table (header, separator, rows), each line ending in a newline."""
    columns = table["columns"]
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def _load(results: Results, name: str, where: str) -> dict[str, Any]:
    try:
        return results.get(name)
    except ResultsError as e:
        raise RenderError(f"{where}: {e} (run the benchmark that writes it)") from e


def _table(results: Results, ref: str, where: str) -> str:
    name, key = _split(ref, where)
    doc = _load(results, name, where)
    tables = doc.get("tables") or {}
    if key not in tables:
        known = ", ".join(sorted(tables)) or "none"
        raise RenderError(f"{where}: result {name!r} has no table {key!r} (its tables: {known})")
    return table_markdown(tables[key])


def _value(results: Results, ref: str, where: str) -> str:
    name, key = _split(ref, where)
    doc = _load(results, name, where)
    if key.startswith("@"):
        if key not in PROVENANCE_KEYS:
            raise RenderError(f"{where}: unknown key {key!r}; known: {', '.join(PROVENANCE_KEYS)}")
        return provenance(doc, key)
    values = doc.get("values") or {}
    if key not in values:
        known = ", ".join(sorted(values)) or "none"
        raise RenderError(f"{where}: result {name!r} has no value {key!r} (its values: {known})")
    return str(values[key])


def render_text(text: str, results: Results, source: str = "<text>") -> str:
    """`text` with every table and inline marker filled from the results."""
    out: list[str] = []
    pos = 0
    for m in TABLE_OPEN.finditer(text):
        if m.start() < pos:
            continue  # an opening marker inside a block we already replaced
        where = f"{source}:{_line(text, m.start())}"
        close = text.find(TABLE_CLOSE, m.end())
        if close < 0:
            raise RenderError(f"{where}: <!-- results:{m.group('ref')} --> has no closing {TABLE_CLOSE}")
        inner_open = TABLE_OPEN.search(text, m.end(), close)
        if inner_open:
            raise RenderError(
                f"{where}: <!-- results:{m.group('ref')} --> is not closed before the next marker"
            )
        out.append(text[pos : m.end()])
        out.append(_table(results, m.group("ref"), where))
        pos = close
    out.append(text[pos:])
    rendered = "".join(out)

    def inline(m: re.Match[str]) -> str:
        where = f"{source}:{_line(rendered, m.start())}"
        return f"<!--r:{m.group('ref')}-->{_value(results, m.group('ref'), where)}<!--/r-->"

    return INLINE.sub(inline, rendered)


def doc_files(root: Path) -> list[Path]:
    """README.md and docs/*.md under `root`."""
    files = [root / "README.md"] if (root / "README.md").is_file() else []
    return files + sorted((root / "docs").glob("*.md"))


def render_files(files: Iterable[Path], results: Results, root: Path) -> dict[Path, tuple[str, str]]:
    """{path: (current text, rendered text)} for every file whose rendering differs."""
    changed: dict[Path, tuple[str, str]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            source = str(path.relative_to(root))
        except ValueError:
            source = str(path)
        new = render_text(text, results, source)
        if new != text:
            changed[path] = (text, new)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the docs in place (the default)")
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff when a doc differs")
    p.add_argument("--root", type=Path, default=REPO, help="repository root (README.md, docs/)")
    p.add_argument(
        "--results", type=Path, default=None, help="results folder (default <root>/benchmarks/results)"
    )
    p.add_argument("files", nargs="*", type=Path, help="Markdown files (default README.md and docs/*.md)")
    args = p.parse_args(argv)
    root = args.root.resolve()
    results_dir = args.results or root / "benchmarks" / "results"
    files = [f.resolve() for f in args.files] or doc_files(root)
    try:
        changed = render_files(files, Results(results_dir), root)
    except RenderError as e:
        print(f"render_results: {e}", file=sys.stderr)
        return 2
    if args.check:
        for path, (old, new) in changed.items():
            name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
            sys.stdout.writelines(
                difflib.unified_diff(old.splitlines(True), new.splitlines(True), name, name)
            )
        if changed:
            print(
                f"render_results: {len(changed)} file(s) do not match benchmarks/results/; "
                "run: python scripts/render_results.py",
                file=sys.stderr,
            )
            return 1
        return 0
    for path, (_, new) in changed.items():
        path.write_text(new, encoding="utf-8")
        print(f"rendered {path.relative_to(root) if path.is_relative_to(root) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
