"""Checks that every documented combination of trtforge's extras installs: pip resolves each one.

    python scripts/check_extras.py            # resolve every combination (cached), print a report
    python scripts/check_extras.py --list     # only print the combinations and their requirements

A combination is what a user or an image installs at once: each extra alone, the ones the docs name
(`.[train,engine,serve]` for `trtforge local`, `trtforge[operator,s3]`, `.[dev]`), and what each
Dockerfile installs (`docker/requirements.py ARGS`, read from the Dockerfiles). Each is resolved with
`pip install --dry-run --ignore-installed --report` against the package index: a conflict (such as
kubernetes 37.0.2 needing python-dateutil >= 3 while aiobotocore, under s3fs, needs < 3) fails CI.
A resolution that worked is cached under .cache/extras/ by the hash of its requirements and Python
version, so a second run costs nothing and an unchanged pyproject.toml needs no network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
DOCKER = ROOT / "docker"
CACHE = ROOT / ".cache" / "extras"
SELF = "trtforge["
# combinations the README and docs tell users to install (besides each extra alone)
DOCUMENTED = [["train", "engine", "serve"], ["operator", "s3"], ["train", "s3"], ["engine", "s3"], ["dev"]]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    return match.group(0).lower() if match else requirement


def extra_requirements(extras: list[str], optional: dict[str, list[str]], base: list[str]) -> list[str]:
    """The pinned requirements of `extras` (self-references such as trtforge[a,b] expanded)."""
    out = list(base)
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for req in optional[extra]:
            if req.startswith(SELF):
                todo += [e.strip() for e in req[len(SELF) :].split("]")[0].split(",")]
            else:
                out.append(req)
    return sorted(dict.fromkeys(out), key=str.lower)


CUDA_MAJORS = ("13", "12")  # the images' default CUDA and their CUDA 12 variant (--build-arg)


def dockerfile_calls() -> dict[str, list[str]]:
    """`docker/requirements.py` argument lists, by image, as the Dockerfiles run them (a call that
    takes the CUDA major from a build arg once per CUDA variant)."""
    calls: dict[str, list[str]] = {}
    for path in sorted(DOCKER.glob("*.Dockerfile")):
        joined = path.read_text().replace("\\\n", " ")
        for i, m in enumerate(re.finditer(r"python3? docker/requirements\.py ([^>&]+?)\s*>", joined)):
            name = f"image {path.name.removesuffix('.Dockerfile')}" + (f" #{i + 1}" if i else "")
            argv = shlex.split(m.group(1))
            if not any("${" in a for a in argv):
                calls[name] = argv
                continue
            for major in CUDA_MAJORS:
                calls[f"{name} (CUDA {major})"] = [major if "${" in a else a for a in argv]
    return calls


def combinations() -> dict[str, list[str]]:
    """Name -> the requirements installed together."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    optional, base = project["optional-dependencies"], project["dependencies"]
    out = {f"[{e}]": extra_requirements([e], optional, base) for e in optional}
    for combo in DOCUMENTED:
        out[f"[{','.join(combo)}]"] = extra_requirements(combo, optional, base)
    for name, argv in dockerfile_calls().items():
        script = [sys.executable, str(DOCKER / "requirements.py"), *argv]
        proc = subprocess.run(script, capture_output=True, text=True, check=True)
        out[name] = proc.stdout.split()
    return out


def _key(requirements: list[str]) -> str:
    text = json.dumps([sys.version_info[:2], sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def resolve(requirements: list[str], use_cache: bool = True) -> tuple[bool, str]:
    """(resolved, detail): pip's dry-run resolution of `requirements` installed together."""
    cached = CACHE / f"{_key(requirements)}.json"
    if use_cache and cached.exists():
        return True, json.loads(cached.read_text())["summary"] + " (cached)"
    report = CACHE / "report.tmp.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    cmd += ["--disable-pip-version-check", "--report", str(report), *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("WARNING: Location")]
        return False, "\n".join(errors[-12:])
    installed = json.loads(report.read_text())["install"]
    report.unlink()
    pins = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installed}
    summary = f"{len(pins)} packages"
    cached.write_text(json.dumps({"requirements": requirements, "summary": summary, "pins": pins}, indent=1))
    return True, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the combinations only")
    parser.add_argument("--no-cache", action="store_true", help="resolve again even when cached")
    args = parser.parse_args(argv)
    failed = []
    for name, reqs in combinations().items():
        if args.list:
            print(f"{name}: {' '.join(reqs)}")
            continue
        ok, detail = resolve(reqs, use_cache=not args.no_cache)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail.splitlines()[0] if ok else ''}")
        if not ok:
            failed.append(name)
            print("     " + detail.replace("\n", "\n     "))
    if failed:
        print(f"extras that cannot be installed together: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
