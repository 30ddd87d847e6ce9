"""Prints the pinned requirements of pyproject.toml extras, one per line, for the image builds.

    python docker/requirements.py engine s3 --with train:scikit-learn,fsspec --without tensorflow-cpu

The pins live once, in pyproject.toml; the Dockerfiles install exactly those (`pip install -r`), and can
leave one out (the trainer image brings its own GPU TensorFlow instead of `tensorflow-cpu`) or borrow a
few packages of another extra (the converter needs the dataset readers of `train`, not TensorFlow).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    return match.group(0).lower() if match else requirement


def requirements(extras: list[str], borrow: list[str], without: set[str]) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    optional = project["optional-dependencies"]
    out = list(project["dependencies"])
    for extra in extras:
        out += [r for r in optional[extra] if not r.startswith("trtforge[")]
    for item in borrow:
        extra, _, names = item.partition(":")
        wanted = {n.strip().lower() for n in names.split(",") if n.strip()}
        picked = [r for r in optional[extra] if _name(r) in wanted]
        missing = wanted - {_name(r) for r in picked}
        if missing:
            raise SystemExit(f"extra {extra!r} has no {sorted(missing)}")
        out += picked
    seen: dict[str, str] = {}
    for r in out:
        if _name(r) not in without:
            seen.setdefault(_name(r), r)
    return list(seen.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("extras", nargs="*", help="extras installed whole")
    parser.add_argument("--with", dest="borrow", action="append", default=[], help="EXTRA:name,name")
    parser.add_argument("--without", action="append", default=[], help="package names left out")
    args = parser.parse_args()
    without = {n.strip().lower() for item in args.without for n in item.split(",")}
    print("\n".join(requirements(args.extras, args.borrow, without)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
