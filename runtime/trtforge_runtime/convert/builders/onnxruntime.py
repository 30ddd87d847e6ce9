"""The onnxruntime artifact: the transformed ONNX plus onnxruntime's offline-optimized model.

It is produced beside every GPU engine so that a pod without a matching engine (or `trtforge local` on a
laptop) can still serve the same network. The offline optimization uses the extended level, whose output
is portable across CPUs (the `all` level adds layout transforms tied to the machine that ran it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

MODEL_FILE = "model.onnx"
OPTIMIZED_FILE = "model.optimized.onnx"


def library_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def build(network: Path, dest: Path) -> None:
    """Write dest/model.onnx (a copy of `network`) and dest/model.optimized.onnx."""
    import onnxruntime as ort

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(network, dest / MODEL_FILE)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(dest / OPTIMIZED_FILE)
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    ort.InferenceSession(str(dest / MODEL_FILE), opts, providers=["CPUExecutionProvider"])
