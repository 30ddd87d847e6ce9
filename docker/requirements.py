"""Prints the pinned requirements of pyproject.toml extras, one per line, for the image builds.

    python docker/requirements.py engine s3 --with train:scikit-learn,fsspec --without tensorflow-cpu
    python docker/requirements.py serve --with engine:tensorrt-rtx-cu13 --cuda 12   # a CUDA 12 image

The pins live once, in pyproject.toml; the Dockerfiles install exactly those (`pip install -r`), and can
leave one out (the trainer image brings its own GPU TensorFlow instead of `tensorflow-cpu`) or borrow a
few packages of another extra (the converter needs the dataset readers of `train`, not TensorFlow).
`--cuda MAJOR` swaps NVIDIA's CUDA-specific wheels (`tensorrt-rtx-cu13`) for the same version built for
another CUDA major (`tensorrt-rtx-cu12`): the images' CUDA 12 variants for nodes with older drivers.
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


CUDA_SUFFIX = re.compile(r"-cu(\d+)(?=[=<>!~;\s]|$)")
CUDA_MAJORS = ("12", "13")


def for_cuda(requirement: str, major: str | None) -> str:
    """`tensorrt-rtx-cu13==1.7.1.116` as the wheel of CUDA `major` (same version), else unchanged."""
    return CUDA_SUFFIX.sub(f"-cu{major}", requirement, count=1) if major else requirement


def requirements(
    extras: list[str], borrow: list[str], without: set[str], cuda: str | None = None
) -> list[str]:
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
            seen.setdefault(_name(r), for_cuda(r, cuda))
    return list(seen.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("extras", nargs="*", help="extras installed whole")
    parser.add_argument("--with", dest="borrow", action="append", default=[], help="EXTRA:name,name")
    parser.add_argument("--without", action="append", default=[], help="package names left out")
    parser.add_argument("--cuda", choices=CUDA_MAJORS, help="CUDA major of NVIDIA's -cuNN wheels")
    args = parser.parse_args()
    without = {n.strip().lower() for item in args.without for n in item.split(",")}
    print("\n".join(requirements(args.extras, args.borrow, without, args.cuda)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
