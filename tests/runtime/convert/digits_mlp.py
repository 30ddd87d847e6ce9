"""A tiny trained digits model folder (as `trtforge train` writes it), made without TensorFlow.

An MLP (x/16 -> Dense 32 relu -> Dense 10 softmax) fitted with scikit-learn on the bundled digits data and
written as an opset-17 ONNX graph with a dynamic batch dimension, plus manifest.json and samples.npz as
docs/artifacts.md describes. Like `trtforge train`'s export, the scaling is a `normalize` Mul and Add by
0-d (scalar) constants: the graph TensorRT-RTX refused once those constants were quantized.
Used by the conversion tests' conftest and by benchmarks/convert_bench.py.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

INPUT, OUTPUT = "pixels", "probabilities"


def build_onnx(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, scale: float) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.array(scale, np.float32), "normalize/scale"),
        numpy_helper.from_array(np.array(0.0, np.float32), "normalize/offset"),
        numpy_helper.from_array(w1.astype(np.float32), "dense/kernel"),
        numpy_helper.from_array(b1.astype(np.float32), "dense/bias"),
        numpy_helper.from_array(w2.astype(np.float32), "dense_1/kernel"),
        numpy_helper.from_array(b2.astype(np.float32), "dense_1/bias"),
    ]
    nodes = [
        helper.make_node("Mul", [INPUT, "normalize/scale"], ["multiplied"], name="normalize/Mul"),
        helper.make_node("Add", ["multiplied", "normalize/offset"], ["scaled"], name="normalize/Add"),
        helper.make_node("MatMul", ["scaled", "dense/kernel"], ["h0"], name="dense/MatMul"),
        helper.make_node("Add", ["h0", "dense/bias"], ["h1"], name="dense/BiasAdd"),
        helper.make_node("Relu", ["h1"], ["h2"], name="dense/Relu"),
        helper.make_node("MatMul", ["h2", "dense_1/kernel"], ["l0"], name="dense_1/MatMul"),
        helper.make_node("Add", ["l0", "dense_1/bias"], ["l1"], name="dense_1/BiasAdd"),
        helper.make_node("Softmax", ["l1"], [OUTPUT], axis=-1, name="dense_1/Softmax"),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", w1.shape[0]])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", w2.shape[1]])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="trtforge-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


def write_model_dir(out: Path, hidden: int = 32, seed: int = 0, name: str = "digits") -> Path:
    """Fit the MLP and write out/{model.onnx, manifest.json, samples.npz}; returns `out`."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    scale = 1.0 / 16.0
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=300, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x_train * scale, y_train)
    accuracy = float(clf.score(x_test * scale, y_test))
    data = build_onnx(clf.coefs_[0], clf.intercepts_[0], clf.coefs_[1], clf.intercepts_[1], scale)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(data)
    np.savez(
        out / "samples.npz",
        x_test=x_test.astype(np.float32),
        y_test=y_test.astype(np.int64),
        x_calib=x_train[:1024].astype(np.float32),
    )
    manifest = {
        "format": "trtforge.model/v1",
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "inputs": [{"name": INPUT, "shape": [-1, 64], "datatype": "FP32"}],
        "outputs": [{"name": OUTPUT, "shape": [-1, 10], "datatype": "FP32"}],
        "versions": {"trtforge": "test"},
        "createdAt": "2026-01-01T00:00:00Z",
        "name": name,
        "spec": {},
        "testAccuracy": accuracy,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out
