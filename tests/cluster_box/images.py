"""The project's container images as local programs: what `docker/<name>.Dockerfile` would run.

The box never builds an image. It reads the final stage of each Dockerfile (ENTRYPOINT, CMD, ENV,
USER) and runs that configuration on this machine, with the image's own software folder
(`/opt/trtforge`, the virtual environment every image installs the project into) standing for the local
virtual environment this Python runs in. An image that no Dockerfile builds cannot be pulled
(`ErrImagePull`), as on a cluster.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
IMAGE_VENV = "/opt/trtforge"  # where every image installs the project (docker/*.Dockerfile)
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the base images' PATH


class ImagePullError(LookupError):
    """No Dockerfile of the project builds this image."""


@dataclass(frozen=True)
class Image:
    """The run configuration of one image's final stage."""

    name: str
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None

    def filesystem(self) -> dict[str, str]:
        """Image path -> host path: the image's software folder is this interpreter's environment."""
        return {IMAGE_VENV: sys.prefix}


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    if current:
        lines.append(current)
    return lines


def _exec_form(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        parsed = json.loads(value)
        return [str(v) for v in parsed]
    return ["/bin/sh", "-c", value]  # shell form


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), value)


def parse_dockerfile(name: str, text: str) -> Image:
    """ENTRYPOINT, CMD, ENV and USER of the Dockerfile's final stage."""
    lines = _logical_lines(text)
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    stage = lines[starts[-1] + 1 :] if starts else lines
    env: dict[str, str] = {"PATH": BASE_PATH}
    entrypoint: list[str] = []
    cmd: list[str] = []
    user = None
    for line in stage:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ENV":
            tokens = shlex.split(rest)
            if len(tokens) >= 2 and "=" not in tokens[0]:  # legacy `ENV KEY value`
                env[tokens[0]] = _expand(" ".join(tokens[1:]), env)
                continue
            updates = {}
            for token in tokens:
                key, _, value = token.partition("=")
                updates[key] = _expand(value, env)
            env.update(updates)
        elif word == "ENTRYPOINT":
            entrypoint, cmd = _exec_form(rest), []  # a new ENTRYPOINT resets CMD (Dockerfile reference)
        elif word == "CMD":
            cmd = _exec_form(rest)
        elif word == "USER":
            user = rest.strip()
    return Image(name=name, entrypoint=entrypoint, cmd=cmd, env=env, user=user)


def image_name(reference: str) -> str:
    """`ghcr.io/trtforge/server:0.1.0` -> `server` (the last path part, without tag or digest)."""
    ref = reference.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


@dataclass
class Images:
    """The images the box can run: one per `docker/<name>.Dockerfile`."""

    folder: Path = DOCKER
    _cache: dict[str, Image] = field(default_factory=dict)

    def resolve(self, reference: str) -> Image:
        name = image_name(reference)
        if name not in self._cache:
            path = self.folder / f"{name}.Dockerfile"
            if not path.is_file():
                raise ImagePullError(
                    f'failed to pull image "{reference}": no docker/{name}.Dockerfile builds it'
                )
            self._cache[name] = parse_dockerfile(name, path.read_text())
        return self._cache[name]
