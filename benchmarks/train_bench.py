"""Training the example end to end: `trtforge train -f examples/digits.yaml`, as the README runs it.

    python benchmarks/train_bench.py [--runs 3] [--manifest examples/digits.yaml]

Each run is a fresh `trtforge train` process (imports, data, training, ONNX export and its parity check
included) into a new folder; measured: the command's wall time and CPU time (user + system, which other
work on a shared machine disturbs less than wall time), the training time and test accuracy it reports
in metrics.json, and the ONNX export's parity with TensorFlow (largest absolute difference, argmax
agreement). Writes benchmarks/results/train.json, which README.md and docs/training.md render.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import fmt, write  # noqa: E402


def trtforge() -> list[str]:
    exe = shutil.which("trtforge")
    return [exe] if exe else [sys.executable, "-m", "trtforge_runtime.cli"]


def run_once(manifest: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        out = Path(tmp) / "model"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [*trtforge(), "train", "-f", str(manifest), "-o", str(out), "--progress", "none"],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"trtforge train failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        metrics = json.loads((out / "metrics.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    parity = metrics.get("onnxParity") or {}
    return {"wall_seconds": wall, "cpu_seconds": cpu, "metrics": metrics, "parity": parity}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--manifest", type=Path, default=REPO / "examples" / "digits.yaml")
    p.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    args = p.parse_args()
    runs = []
    for i in range(args.runs):
        result = run_once(args.manifest)
        runs.append(result)
        m = result["metrics"]
        print(
            f"run {i + 1}/{args.runs}: {result['wall_seconds']:.1f} s wall, "
            f"{result['cpu_seconds']:.1f} s CPU, "
            f"{m['seconds']:.1f} s training, accuracy {m['test']['accuracy']:.4f}, "
            f"parity {json.dumps(result['parity'])}"
        )
    if args.no_record:
        return 0
    parity = [r["parity"] for r in runs]
    values = {
        "wall_seconds": fmt([r["wall_seconds"] for r in runs], "s", 1),
        "cpu_seconds": fmt([r["cpu_seconds"] for r in runs], "s", 1),
        "train_seconds": fmt([r["metrics"]["seconds"] for r in runs], "s", 1),
        "accuracy": fmt([r["metrics"]["test"]["accuracy"] for r in runs], "", 3),
        "epochs": str(runs[0]["metrics"].get("epochs", "")),
    }
    if all("maxAbsDiff" in x for x in parity):
        values["parity_max_abs_diff"] = f"{max(x['maxAbsDiff'] for x in parity):.1e}"
    if all("argmaxAgreement" in x for x in parity):
        values["parity_agreement"] = f"{100 * min(x['argmaxAgreement'] for x in parity):.1f} %"
    try:
        manifest = str(args.manifest.resolve().relative_to(REPO))
    except ValueError:
        manifest = str(args.manifest)
    path = write(
        "train",
        command="python benchmarks/train_bench.py " + " ".join(sys.argv[1:]),
        runs=args.runs,
        values=values,
        data={"manifest": manifest, "runs": runs},
        packages=["tensorflow-cpu", "keras", "tf2onnx", "onnxruntime", "scikit-learn"],
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
