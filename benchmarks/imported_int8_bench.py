# ruff: noqa: RUF002, RUF003  (figures use the en dash of "min–max")
"""int8 of an imported model of two inputs, calibrated on its dataset's rows or on synthetic rows.

    python benchmarks/imported_int8_bench.py              # 3 runs (Keras seeds 42, 43, 44)
    python benchmarks/imported_int8_bench.py --runs 1 --no-write

The model and data are docs/conversion.md's "Bring your own Keras model" walk-through, run as printed
(with `keras.utils.set_random_seed(SEED)` first): a functional Keras model of two inputs (`image`
8x8x1, `tabular` 3 features) trained on scikit-learn's digits, saved as `.keras`, and `data.npz` with
one array per input (`x.image`, `x.tabular`, `y`). Each run converts the `.keras` file as `trtforge
convert` does (source.resolve with the walk-through's manifest: the dataset split into the gate's test
rows and the calibration rows of the training split), then makes the int8 network with each calibration
method on the dataset's rows, and once (minmax) on the seeded synthetic rows the gate falls back to
without data (uniform [0, 1) per input, the same number of rows). Each int8 network is compared with
the fp32 model in onnxruntime on the gate's test rows and on every row of the dataset: top-1
disagreement, max abs difference and mean KL of the probabilities. Medians with min–max over the runs;
writes benchmarks/results/imported_int8.json, which docs/conversion.md renders.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trtforge_runtime.convert import command, gate, precision, profiles, source  # noqa: E402
from trtforge_runtime.spec.load import load_manifest  # noqa: E402

from benchmarks.results import fmt, write  # noqa: E402

METHODS = ("minmax", "entropy", "percentile")
SECTION = ("## Bring your own Keras model", "## Models with several inputs and outputs")


def walkthrough() -> tuple[str, str]:
    """The training script and the manifest as docs/conversion.md prints them."""
    text = (REPO / "docs" / "conversion.md").read_text()
    section = text[text.index(SECTION[0]) : text.index(SECTION[1])]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    (kind, script), (kind2, manifest) = blocks[:2]
    assert (kind, kind2) == ("python", "yaml"), (kind, kind2)
    return script, manifest


def prepare(work: Path, seed: int) -> source.ModelSource:
    """Train the walk-through's model with `seed` in `work`; the ModelSource trtforge convert would gate."""
    script, manifest = walkthrough()
    (work / "my_train.py").write_text(f"import keras\nkeras.utils.set_random_seed({seed})\n{script}")
    (work / "my-model.yaml").write_text(manifest)
    done = subprocess.run(
        [sys.executable, "my_train.py"], cwd=work, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the walk-through's training script failed:\n{done.stderr[-3000:]}")
    spec = load_manifest(work / "my-model.yaml").spec
    return source.resolve(spec, None, work, base_dir=work)


def measure(src: source.ModelSource, net: Path, rows: dict[str, gate.Feeds], ref: dict[str, Any]) -> dict:
    out: dict[str, Any] = {}
    for where, feeds in rows.items():
        m = gate.measure(ref[where], gate.run(net, None, feeds, src.output.name))
        out[where] = {"disagreement": m.top1_drop, "maxAbsDiff": m.max_abs_diff, "meanKl": m.mean_kl}
    return out


def one_run(seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="trtforge-imported-int8-") as tmp:
        work = Path(tmp)
        src = prepare(work, seed)
        x_test, y_test, _ = command.gate_rows(src, 10**9)
        with np.load(work / "data.npz") as data:
            every = {t.name: data[f"x.{t.name}"].astype(np.float32) for t in src.inputs}
        rows = {"test": x_test, "all": every}
        ref = {where: gate.run(src.onnx_path, None, feeds, src.output.name) for where, feeds in rows.items()}
        assert src.samples.x_calib is not None, "the dataset gave no calibration rows"
        calib = command.check_feeds(src, src.samples.x_calib, "calibration rows")
        rng = np.random.default_rng(0)
        ranges = profiles.input_ranges(src.inputs, [])
        n = gate.feed_rows(calib)
        synthetic = {t.name: command.synthetic(rng, t, n, ranges[t.name][1]) for t in src.inputs}
        result: dict[str, Any] = {
            "seed": seed,
            "testRows": gate.feed_rows(x_test),
            "rows": gate.feed_rows(every),
            "calibrationRows": n,
            "accuracy": float(np.mean(np.argmax(ref["test"], 1) == y_test)),
        }
        for label, feeds, method in [
            *((m, calib, m) for m in METHODS),
            ("synthetic", synthetic, "minmax"),
        ]:
            net = work / f"int8-{label}.onnx"
            options = precision.Int8Options(method=method)
            precision.transform(src.onnx_path, "int8", net, input_name=None, calib=feeds, options=options)
            result[label] = measure(src, net, rows, ref)
        return result


def render(runs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    def pct(values: list[float]) -> str:
        return fmt([100 * v for v in values], "%", digits=2)

    table = []
    values: dict[str, str] = {}
    for label in (*METHODS, "synthetic"):
        calibrated = "uniform [0, 1) rows" if label == "synthetic" else "data.npz (training split)"
        method = "minmax" if label == "synthetic" else label
        row = [calibrated, method]
        for where in ("test", "all"):
            m = [run[label][where] for run in runs]
            row += [pct([v["disagreement"] for v in m]), fmt([v["maxAbsDiff"] for v in m], digits=4)]
            values[f"{label}_{where}_disagreement"] = pct([v["disagreement"] for v in m])
            values[f"{label}_{where}_max_abs_diff"] = fmt([v["maxAbsDiff"] for v in m], digits=4)
        kl = [run[label]["all"]["meanKl"] for run in runs if run[label]["all"]["meanKl"] is not None]
        table.append([*row, fmt(kl, digits=5) if kl else "n/a"])
    values["test_rows"] = str(runs[0]["testRows"])
    values["rows"] = str(runs[0]["rows"])
    values["calibration_rows"] = str(runs[0]["calibrationRows"])
    values["fp32_accuracy"] = pct([run["accuracy"] for run in runs])
    columns = [
        "int8 calibrated on", "method",
        f"top-1 disagreement vs fp32 ({runs[0]['testRows']} test rows)", "max abs diff (test rows)",
        f"top-1 disagreement ({runs[0]['rows']} rows)", f"max abs diff ({runs[0]['rows']} rows)", "mean KL",
    ]  # fmt: skip
    return {"int8": {"columns": columns, "rows": table}}, values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="Keras seeds 42, 43, ... (one run each)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write the results file")
    args = parser.parse_args(argv)
    runs = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs} (seed {42 + i})", flush=True)
        runs.append(one_run(42 + i))
    tables, values = render(runs)
    for table in tables.values():
        print(" | ".join(table["columns"]))
        for row in table["rows"]:
            print(" | ".join(row))
    print({k: v for k, v in values.items() if "_" not in k or k.endswith("rows") or "accuracy" in k})
    if not args.no_write:
        path = write(
            "imported_int8",
            command="python benchmarks/imported_int8_bench.py"
            + (f" --runs {args.runs}" if args.runs != 3 else ""),
            runs=args.runs,
            tables=tables,
            values=values,
            data=runs,
            packages=["onnxruntime", "onnx", "tensorflow-cpu", "keras", "tf2onnx"],
        )
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
