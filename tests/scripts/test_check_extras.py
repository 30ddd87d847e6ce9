"""scripts/check_extras.py: which combinations of extras CI resolves (the resolution itself runs in
scripts/test.sh, against the package index)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_extras", REPO / "scripts" / "check_extras.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_extras"] = module
    spec.loader.exec_module(module)
    return module


def test_combinations_cover_each_extra_the_documented_sets_and_every_image() -> None:
    combos = _script().combinations()
    for name in ("[operator]", "[s3]", "[train]", "[engine]", "[serve]", "[dev]", "[operator,s3]"):
        assert name in combos
    images = {n for n in combos if n.startswith("image ")}
    dockerfiles = {p.name.removesuffix(".Dockerfile") for p in (REPO / "docker").glob("*.Dockerfile")}
    assert {n.split()[1] for n in images} == dockerfiles
    assert (
        "image server (CUDA 12)" in combos
        and "tensorrt-rtx-cu12==1.7.1.116" in combos["image server (CUDA 12)"]
    )
    operator_s3 = {r.split("==")[0].lower() for r in combos["[operator,s3]"]}
    assert {"kopf", "kubernetes", "s3fs"} <= operator_s3


def test_dev_expands_its_self_reference() -> None:
    reqs = {r.split("==")[0].lower() for r in _script().combinations()["[dev]"]}
    assert {"kopf", "keras", "onnxruntime", "pytest"} <= reqs
    assert not any(r.startswith("trtforge") for r in reqs)


def test_a_conflict_is_reported_not_cached(tmp_path: Path) -> None:
    """kubernetes 37.0.2 and s3fs 2026.9.0 cannot be installed together (python-dateutil >= 3 vs < 3)."""
    script = _script()
    script.CACHE = tmp_path
    ok, detail = script.resolve(["kubernetes==37.0.2", "s3fs==2026.9.0"])
    assert not ok and "conflicting dependencies" in detail
    assert not list(tmp_path.glob("*.json"))
