# ruff: noqa: RUF002, RUF003  (figures use the en dash of "min–max")
"""Precision benchmark: fp32 / fp16 / int8 side by side on real `trtforge train` outputs.

    python benchmarks/precision_bench.py                  # 3 runs (training seeds 42, 43, 44)
    python benchmarks/precision_bench.py --runs 1 --models digits iris

Models: examples/digits.yaml (the digits MLP), examples/digits-cnn.yaml (two Conv2D + pooling layers on
8x8x1 images) and examples/iris-csv.yaml (an MLP on a CSV file), all with `normalize: max`. Each run
trains every model with `trtforge train` (a different seed per run), then per precision: the transform
(`int8` with spec.engine.calibration's default, minmax), the TensorRT-RTX builds for sm86 and sm89 on
this CPU, the onnxruntime artifact, and on the FULL dataset (every row, not only the test split):
accuracy against the labels, top-1 disagreement with the fp32 model, max abs difference and mean KL
divergence of the probabilities. A second table compares the int8 calibrators (minmax, entropy,
percentile) on the same models. Figures are medians with min–max over the runs. Writes
benchmarks/results/precision.json (benchmarks/results.py), which docs/conversion.md renders.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trtforge_runtime.convert import gate, precision  # noqa: E402
from trtforge_runtime.convert.builders import onnxruntime as ort_artifact  # noqa: E402
from trtforge_runtime.convert.builders.base import BuildRequest  # noqa: E402
from trtforge_runtime.convert.builders.rtx import RtxBuilder  # noqa: E402
from trtforge_runtime.spec.load import load_manifest  # noqa: E402
from trtforge_runtime.train.datasets import DatasetSettings, load_arrays  # noqa: E402

from benchmarks.results import fmt, write  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")
METHODS = ("minmax", "entropy", "percentile")
CCS = ("8.6", "8.9")
NAMES = {"digits": "digits MLP", "cnn": "digits CNN", "iris": "iris CSV MLP"}
FILES = {"digits": "digits", "cnn": "digits-cnn", "iris": "iris-csv"}


def manifests() -> dict[str, dict[str, Any]]:
    """The examples as they are (iris with its CSV path made absolute: the spec is written elsewhere)."""
    load = {
        name: yaml.safe_load((REPO / "examples" / f"{file}.yaml").read_text()) for name, file in FILES.items()
    }
    load["iris"]["spec"]["model"]["train"]["dataset"]["uri"] = str(REPO / "examples" / "iris.csv")
    return load


def train(doc: dict[str, Any], seed: int, folder: Path) -> Path:
    doc = copy.deepcopy(doc)
    doc["spec"]["model"]["train"]["seed"] = seed
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc))
    cmd = [sys.executable, "-m", "trtforge_runtime.cli", "train", "-f", str(spec), "-o", str(folder / "m")]
    done = subprocess.run([*cmd, "--progress", "none"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"trtforge train failed for {spec}:\n{done.stderr[-3000:]}")
    return spec


def full_dataset(spec: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every row of the model's dataset, shaped as the model's input."""
    train_spec = load_manifest(spec).spec.model.train
    assert train_spec is not None
    x, y = load_arrays(train_spec.dataset, DatasetSettings.from_env(base_dir=spec.parent))
    shape = train_spec.architecture.input_shape if train_spec.architecture else None
    return (x.reshape(len(x), *shape) if shape else x), y


def measure_precision(
    model: Path, prec: str, x: np.ndarray, y: np.ndarray, ref: np.ndarray, work: Path
) -> dict[str, Any]:
    import onnx

    input_name = onnx.load(str(model / "model.onnx")).graph.input[0].name
    calib = np.load(model / "samples.npz")["x_calib"]
    net = work / f"{prec}.onnx"
    start = time.perf_counter()
    precision.transform(model / "model.onnx", prec, net, input_name=input_name, calib=calib)
    transform_s = time.perf_counter() - start
    out = gate.run(net, input_name, x)
    m = gate.measure(ref, out)
    row: dict[str, Any] = {
        "accuracy": float(np.mean(np.argmax(out, 1) == y)),
        "disagreement": m.top1_drop,
        "maxAbsDiff": m.max_abs_diff,
        "meanKl": m.mean_kl,
        "transformSeconds": transform_s,
    }
    ort_dir = work / f"ort-{prec}"
    ort_artifact.build(net, ort_dir)
    row["onnxruntimeBytes"] = (ort_dir / ort_artifact.MODEL_FILE).stat().st_size
    rtx = RtxBuilder()
    for cc in CCS:
        dest = work / f"{prec}-{cc}.engine"
        start = time.perf_counter()
        rtx.build(BuildRequest(net, prec, _batch(), 512, cc), dest)
        row[f"buildSeconds{cc}"] = time.perf_counter() - start
        row[f"engineBytes{cc}"] = dest.stat().st_size
    return row


def _batch() -> Any:
    from trtforge_runtime.spec.model import BatchProfile

    return BatchProfile(min=1, opt=32, max=256)


def measure_methods(model: Path, x: np.ndarray, ref: np.ndarray, work: Path) -> dict[str, dict[str, Any]]:
    import onnx

    input_name = onnx.load(str(model / "model.onnx")).graph.input[0].name
    calib = np.load(model / "samples.npz")["x_calib"]
    out: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        net = work / f"int8-{method}.onnx"
        options = precision.Int8Options(method=method)
        precision.transform(
            model / "model.onnx", "int8", net, input_name=input_name, calib=calib, options=options
        )
        m = gate.measure(ref, gate.run(net, input_name, x))
        out[method] = {"disagreement": m.top1_drop, "maxAbsDiff": m.max_abs_diff, "meanKl": m.mean_kl}
    return out


def one_run(name: str, doc: dict[str, Any], seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"trtforge-precision-{name}-") as tmp:
        work = Path(tmp)
        spec = train(doc, seed, work)
        model = work / "m"
        x, y = full_dataset(spec)
        import onnx

        ref = gate.run(model / "model.onnx", onnx.load(str(model / "model.onnx")).graph.input[0].name, x)
        rows = {p: measure_precision(model, p, x, y, ref, work) for p in PRECISIONS}
        return {
            "seed": seed,
            "rows": len(x),
            "precisions": rows,
            "methods": measure_methods(model, x, ref, work),
        }


def percent(values: list[float]) -> str:
    return fmt([100 * v for v in values], "%", digits=2)


def render(results: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    columns = [
        "model", "precision", "accuracy (full set)", "top-1 disagreement vs fp32", "max abs diff",
        "TensorRT-RTX sm89 engine", "onnxruntime model", "RTX build (sm89)",
    ]  # fmt: skip
    rows, method_rows = [], []
    values: dict[str, str] = {}
    for name, runs in results.items():
        for p in PRECISIONS:
            r = [run["precisions"][p] for run in runs]
            rows.append(
                [
                    f"{NAMES[name]} ({runs[0]['rows']} rows)", p,
                    percent([v["accuracy"] for v in r]), percent([v["disagreement"] for v in r]),
                    fmt([v["maxAbsDiff"] for v in r], digits=4),
                    fmt([v["engineBytes8.9"] / 1000 for v in r], "kB", digits=1),
                    fmt([v["onnxruntimeBytes"] / 1000 for v in r], "kB", digits=1),
                    fmt([v["buildSeconds8.9"] for v in r], "s", digits=2),
                ]
            )  # fmt: skip
            values[f"{name}_{p}_disagreement"] = percent([v["disagreement"] for v in r])
            values[f"{name}_{p}_max_abs_diff"] = fmt([v["maxAbsDiff"] for v in r], digits=4)
        for method in METHODS:
            m = [run["methods"][method] for run in runs]
            method_rows.append(
                [
                    NAMES[name], method, percent([v["disagreement"] for v in m]),
                    fmt([v["maxAbsDiff"] for v in m], digits=4),
                    fmt([v["meanKl"] for v in m if v["meanKl"] is not None], digits=5),
                ]
            )  # fmt: skip
    tables = {
        "precisions": {"columns": columns, "rows": rows},
        "calibration": {
            "columns": ["model", "int8 calibration", "top-1 disagreement vs fp32", "max abs diff", "mean KL"],
            "rows": method_rows,
        },
    }
    return tables, values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="training seeds 42, 43, ... (one run each)")
    parser.add_argument("--models", nargs="+", default=list(NAMES), choices=list(NAMES))
    parser.add_argument("--no-write", action="store_true", help="print only; do not write the results file")
    args = parser.parse_args(argv)
    docs = manifests()
    results: dict[str, list[dict[str, Any]]] = {}
    for name in args.models:
        for i in range(args.runs):
            print(f"{NAMES[name]}: run {i + 1}/{args.runs} (seed {42 + i})", flush=True)
            results.setdefault(name, []).append(one_run(name, docs[name], 42 + i))
    tables, values = render(results)
    for table in tables.values():
        print(" | ".join(table["columns"]))
        for row in table["rows"]:
            print(" | ".join(row))
        print()
    if not args.no_write:
        command = "python benchmarks/precision_bench.py" + (f" --runs {args.runs}" if args.runs != 3 else "")
        if args.models != list(NAMES):
            command += " --models " + " ".join(args.models)
        path = write(
            "precision",
            command=command,
            runs=args.runs,
            tables=tables,
            values=values,
            data=results,
            packages=[
                "tensorrt-rtx-cu13",
                "onnxruntime",
                "onnx",
                "onnxconverter-common",
                "tensorflow-cpu",
                "keras",
            ],
        )
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
