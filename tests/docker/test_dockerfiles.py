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


def args_of(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))


def requirement_calls(text: str) -> list[list[str]]:
    joined = text.replace("\\\n", " ")
    return [
        shlex.split(m.group(1))
        for m in re.finditer(r"python3? docker/requirements\.py ([^>&]+?)\s*>", joined)
    ]


@pytest.mark.parametrize("name", IMAGES)
def test_bases_are_pinned_and_multi_stage(name: str) -> None:
    text = dockerfile(name)
    args = args_of(text)
    froms = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M)
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    stages = {alias for _, alias in froms if alias}
    for image, _ in froms:
        if image in stages:
            continue
        ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
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
