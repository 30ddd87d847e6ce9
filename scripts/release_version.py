"""The version a release tag publishes, checked against the chart and the package.

    python3 scripts/release_version.py v0.1.0      # prints version=0.1.0 (for $GITHUB_OUTPUT)

The release workflow (.github/workflows/release.yaml) tags every image with the chart's appVersion, which
is what the chart's image tags default to; so the tag must be v + appVersion, and the chart's version and
pyproject's version must be the same number. Exits 1 naming each mismatch. Standard library only (it runs
on a bare CI runner before anything is installed).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "trtforge" / "Chart.yaml"
PYPROJECT = REPO / "pyproject.toml"


def chart_field(text: str, key: str) -> str:
    """A top-level scalar of Chart.yaml (`key: 1.2.3` or `key: "1.2.3"`)."""
    found = re.search(rf"^{key}:\s*[\"']?([^\"'\s#]+)[\"']?\s*(?:#.*)?$", text, re.M)
    if found is None:
        raise SystemExit(f"{CHART.relative_to(REPO)}: no {key}")
    return found.group(1)


def problems(tag: str, chart: str, pyproject: str) -> tuple[str, list[str]]:
    """(the version, what does not match) for a tag and the texts of Chart.yaml and pyproject.toml."""
    app_version = chart_field(chart, "appVersion")
    found = {
        "the tag": tag.removeprefix("v") if tag.startswith("v") else tag,
        "Chart.yaml version": chart_field(chart, "version"),
        "pyproject.toml version": tomllib.loads(pyproject)["project"]["version"],
    }
    bad = [] if tag.startswith("v") else [f"the tag {tag!r} does not start with v"]
    bad += [
        f"{what} is {value}, Chart.yaml appVersion is {app_version}"
        for what, value in found.items()
        if value != app_version
    ]
    return app_version, bad


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 scripts/release_version.py TAG   (e.g. v0.1.0)", file=sys.stderr)
        return 2
    version, bad = problems(argv[0], CHART.read_text(), PYPROJECT.read_text())
    if bad:
        for line in bad:
            print(f"release {argv[0]}: {line}", file=sys.stderr)
        return 1
    print(f"version={version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
