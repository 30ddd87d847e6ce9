"""The image Dockerfiles (no Docker engine here to build them): pinned multi-stage bases, non-root UID
10001, `trtforge` as entrypoint, and requirements that resolve from pyproject.toml's pinned extras."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
IMAGES = ["operator", "trainer", "converter", "converter-tensorrt", "server"]


def dockerfile(name: str) -> str:
    return (DOCKER / f"{name}.Dockerfile").read_text()


def args_of(text: str, **build_args: str) -> dict[str, str]:
    """The global build args with their defaults expanded (`${CUDA_VERSION}` in another's default)."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M)) | build_args

    def expand(value: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: expand(args[m.group(1)]), value)

    return {k: expand(v) for k, v in args.items()}


def cuda_major(text: str, **build_args: str) -> str:
    """The CUDA major an image is built for ("" for images without CUDA build args)."""
    args = args_of(text, **build_args)
    if "CUDA_MAJOR" in args:
        return args["CUDA_MAJOR"]
    return args["CUDA_VERSION"].split(".")[0] if "CUDA_VERSION" in args else ""


def requirement_calls(text: str, **build_args: str) -> list[list[str]]:
    """The `docker/requirements.py` argument lists, with the shell's `${CUDA_VERSION%%.*}` resolved."""
    joined = text.replace("\\\n", " ")
    calls = [
        shlex.split(m.group(1))
        for m in re.finditer(r"python3? docker/requirements\.py ([^>&]+?)\s*>", joined)
    ]
    major = cuda_major(text, **build_args)
    return [[major if "${CUDA" in arg else arg for arg in call] for call in calls]


@pytest.mark.parametrize("name", IMAGES)
def test_bases_are_pinned_and_multi_stage(name: str) -> None:
    text = dockerfile(name)
    froms = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M)
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    stages = {alias for _, alias in froms if alias}
    for image, _ in froms:
        if image in stages:
            continue
        ref = args_of(text, _IMAGE=image)["_IMAGE"]
        repo, _, tag = ref.partition("@")[0].rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: base {ref} must be pinned to an exact tag"
        assert re.search(r"\d+\.\d+", tag), f"{name}: base tag {tag} is not a version"


@pytest.mark.parametrize("name", IMAGES)
def test_runtime_stage_is_non_root(name: str) -> None:
    final = dockerfile(name).rsplit("\nFROM ", 1)[1]
    assert "USER 10001:10001" in final
    assert "useradd --uid 10001 --gid 10001" in final
    assert 'ENTRYPOINT ["trtforge"]' in final
    assert "HOME=/tmp" in final  # the root filesystem is read-only in the pods: /tmp is the writable place


@pytest.mark.parametrize("name", IMAGES)
def test_requirements_resolve_from_pyproject(name: str) -> None:
    calls = requirement_calls(dockerfile(name))
    assert calls, f"{name} installs nothing from pyproject.toml"
    for argv in calls:
        proc = subprocess.run(
            [sys.executable, str(DOCKER / "requirements.py"), *argv],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        reqs = proc.stdout.split()
        assert reqs and all("==" in r for r in reqs), reqs
        names = {r.split("==")[0].lower() for r in reqs}
        if name == "operator":
            assert "kopf" in names
            assert not names & {"tensorflow", "tensorflow-cpu", "keras", "onnxruntime", "tensorrt-rtx-cu13"}
        if name == "trainer":
            assert "tensorflow-cpu" not in names and "keras" in names
        if name in {"converter", "server"}:
            assert not names & {"tensorflow", "tensorflow-cpu", "keras"}


def test_requirements_refuses_unknown_packages() -> None:
    proc = subprocess.run(
        [sys.executable, str(DOCKER / "requirements.py"), "engine", "--with", "train:no-such-package"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "no-such-package" in proc.stderr


def test_engines_and_runtime_share_one_tensorrt() -> None:
    builder = args_of(dockerfile("converter-tensorrt"))
    server = args_of(dockerfile("server"))
    assert builder["TENSORRT_VERSION"] == server["TENSORRT_VERSION"]
    assert builder["CUDA_RUNTIME_IMAGE"] == server["CUDA_RUNTIME_IMAGE"]


def test_build_context_has_what_the_dockerfiles_copy() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for name in IMAGES:
        for src in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile(name), re.M):
            for path in src.split():
                assert path.rstrip("/") in allowed, f"{name}: COPY {path} is excluded by .dockerignore"
                assert (REPO / path).exists(), path


# ---------------------------------------------------------------------------------------------- CUDA 12

CUDA_IMAGES = {"server": "CUDA_VERSION", "converter-tensorrt": "CUDA_VERSION", "converter": "CUDA_MAJOR"}
CUDA_12 = {"CUDA_VERSION": "12.9.1", "CUDA_MAJOR": "12"}
INDEX_CACHE = REPO / ".cache" / "extras" / "index"


def cuda_packages(name: str, **build_args: str) -> dict[str, str]:
    """NVIDIA's CUDA-specific wheels an image installs (name -> version) for the given build args."""
    text = dockerfile(name)
    out = {}
    for argv in requirement_calls(text, **build_args):
        proc = subprocess.run(
            [sys.executable, str(DOCKER / "requirements.py"), *argv],
            capture_output=True,
            text=True,
            check=True,
        )
        for req in proc.stdout.split():
            pkg, _, version = req.partition("==")
            if re.search(r"-cu\d+$", pkg):
                out[pkg] = version
    args = args_of(text, **build_args)
    for m in re.finditer(r'"(tensorrt)-cu\$\{CUDA_VERSION%%\.\*\}==\$\{(\w+)\}"', text):
        out[f"{m.group(1)}-cu{cuda_major(text, **build_args)}"] = args[m.group(2)]
    return out


@pytest.mark.parametrize("name", sorted(CUDA_IMAGES))
@pytest.mark.parametrize("major", ["12", "13"])
def test_cuda_build_arg_selects_the_wheels_of_that_cuda(name: str, major: str) -> None:
    arg = CUDA_IMAGES[name]
    build_args = {arg: CUDA_12[arg]} if major == "12" else {}
    packages = cuda_packages(name, **build_args)
    assert packages, f"{name} installs no CUDA-specific wheel"
    assert all(p.endswith(f"-cu{major}") for p in packages), packages
    if arg == "CUDA_VERSION":
        runtime = args_of(dockerfile(name), **build_args)["CUDA_RUNTIME_IMAGE"]
        assert runtime.startswith(f"nvidia/cuda:{major}."), runtime


def _index_versions(package: str) -> list[str]:
    """The versions the package index offers (cached in .cache/extras/index for offline reruns)."""
    cached = INDEX_CACHE / f"{package}.txt"
    if cached.exists():
        return cached.read_text().split()
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", package, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    found = re.search(r"Available versions: (.+)", proc.stdout)
    assert found, f"pip index versions {package}: {proc.stderr[-500:]}"
    versions = [v.strip() for v in found.group(1).split(",")]
    INDEX_CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text("\n".join(versions))
    return versions


@pytest.mark.parametrize("name", sorted(CUDA_IMAGES))
def test_cuda_12_and_13_wheels_exist_at_the_pinned_versions(name: str) -> None:
    """Every CUDA-specific wheel of both variants is on the package index at the pinned version."""
    arg = CUDA_IMAGES[name]
    for build_args in ({}, {arg: CUDA_12[arg]}):
        for package, version in cuda_packages(name, **build_args).items():
            assert version in _index_versions(package), f"{package}=={version} is not on the index"


def test_install_docs_state_the_driver_each_image_needs() -> None:
    text = (REPO / "docs" / "install.md").read_text()
    assert "R580" in text and "R525" in text
    assert "--build-arg CUDA_VERSION=12.9.1" in text and "--build-arg CUDA_MAJOR=12" in text
