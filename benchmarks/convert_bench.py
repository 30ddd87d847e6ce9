"""Conversion benchmark: build time and engine size per backend/precision, and the accuracy gate's cost.

    python benchmarks/convert_bench.py                   # the digits MLP (64-128-10), made on the fly
    python benchmarks/convert_bench.py --model out/m     # a `trtforge train` output folder
    python benchmarks/convert_bench.py --ccs 8.6 8.9 12.0 --repeat 5 --rows 512

Builds run directly through the builders (no cache), so every figure is a real build. Prints one table;
`--json FILE` also writes the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from trtforge_runtime.convert import gate, precision, source
from trtforge_runtime.convert.builders import onnxruntime as ort_artifact
from trtforge_runtime.convert.builders.base import BuildRequest
from trtforge_runtime.convert.builders.rtx import RtxBuilder
from trtforge_runtime.spec.model import BatchProfile

ROOT = Path(__file__).resolve().parents[1]


def digits_model(folder: Path, hidden: int) -> Path:
    helper = ROOT / "tests" / "runtime" / "convert" / "digits_mlp.py"
    spec = importlib.util.spec_from_file_location("digits_mlp", helper)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.write_model_dir(folder, hidden=hidden))


def timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="a trtforge train output folder (default: digits MLP)")
    p.add_argument("--hidden", type=int, default=128, help="hidden units of the generated digits MLP")
    p.add_argument("--ccs", nargs="+", default=["8.6", "8.9"], help="compute capabilities to build")
    p.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8"])
    p.add_argument("--repeat", type=int, default=3, help="builds per configuration (median reported)")
    p.add_argument("--rows", type=int, default=512, help="gate rows")
    p.add_argument("--batch", nargs=3, type=int, default=[1, 32, 256], metavar=("MIN", "OPT", "MAX"))
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="trtforge-bench-") as tmp:
        work = Path(tmp)
        model_dir = args.model or digits_model(work / "model", args.hidden)
        src = source.from_model_dir(model_dir)
        x = src.samples.x_test if src.samples.x_test is not None else np.random.rand(args.rows, 64)
        x = np.resize(x, (args.rows, *x.shape[1:])).astype(np.float32)  # repeat rows up to --rows
        ref_seconds = timed(gate.Gate, src.onnx_path, src.input.name, src.output.name, x, 0.01)
        the_gate = gate.Gate(src.onnx_path, src.input.name, src.output.name, x, 0.01)
        batch = BatchProfile(min=args.batch[0], opt=args.batch[1], max=args.batch[2])
        rtx = RtxBuilder()
        rows: list[dict[str, Any]] = []
        for prec in args.precisions:
            net = work / f"{prec}.onnx"
            transform_s = timed(
                precision.transform,
                src.onnx_path,
                prec,
                net,
                input_name=src.input.name,
                calib=src.samples.x_calib,
            )
            result, _ = the_gate.evaluate(prec, net)
            ort_dir = work / f"ort-{prec}"
            ort_s = timed(ort_artifact.build, net, ort_dir)
            rows.append(
                {
                    "backend": "onnxruntime", "precision": prec, "target": "cpu", "buildSeconds": ort_s,
                    "sizeBytes": (ort_dir / ort_artifact.OPTIMIZED_FILE).stat().st_size,
                    "transformSeconds": transform_s, "gateSeconds": result.seconds,
                    "top1Drop": result.top1_drop,
                }
            )  # fmt: skip
            for cc in args.ccs:
                try:
                    rtx.check_target(cc, prec)
                except Exception as exc:
                    print(f"skip tensorrt-rtx {prec} {cc}: {exc}", file=sys.stderr)
                    continue
                times, size = [], 0
                for i in range(args.repeat):
                    dest = work / f"{prec}-{cc}-{i}.engine"
                    times.append(timed(rtx.build, BuildRequest(net, prec, batch, 1024, cc), dest))
                    size = dest.stat().st_size
                rows.append(
                    {
                        "backend": "tensorrt-rtx", "precision": prec, "target": f"sm{cc.replace('.', '')}",
                        "buildSeconds": statistics.median(times), "sizeBytes": size,
                        "transformSeconds": transform_s, "gateSeconds": result.seconds,
                        "top1Drop": result.top1_drop,
                    }
                )  # fmt: skip

    lib = f"tensorrt-rtx {rtx.library_version()}, onnxruntime {ort_artifact.library_version()}"
    print(f"model {model_dir} ({src.digest[:19]}), gate rows {len(x)}")
    print(f"gate fp32 reference (session + run): {ref_seconds * 1e3:.1f} ms")
    print(f"{lib}, batch profile {args.batch}")
    cols = ("backend", "precision", "target", "build s", "size bytes", "transform s", "gate s", "top-1 drop")
    widths = (-13, -9, -7, 8, 11, 11, 7, 10)
    print(" ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        cells = (
            r["backend"], r["precision"], r["target"], f"{r['buildSeconds']:.3f}", f"{r['sizeBytes']:,}",
            f"{r['transformSeconds']:.3f}", f"{r['gateSeconds']:.3f}", f"{r['top1Drop']:.4f}",
        )  # fmt: skip
        print(" ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    if args.json:
        args.json.write_text(json.dumps({"referenceSeconds": ref_seconds, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
