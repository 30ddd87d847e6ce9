"""A small ONNX model with several typed inputs and two outputs, written with onnx.helper.

Inputs: `image` FP32 [-1, 4, 4], `tabular` FP16 [-1, 3], `site` INT64 [-1, 1] (an embedding row),
`count` INT32 [-1, 1] and `flag` BOOL [-1, 1]. Outputs: `probabilities` FP32 [-1, 3] (softmax) and
`score` FP32 [-1, 1]. Every input changes the outputs, so a feed sent to the wrong input shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INPUTS = {
    "image": ("FP32", (4, 4)),
    "tabular": ("FP16", (3,)),
    "site": ("INT64", (1,)),
    "count": ("INT32", (1,)),
    "flag": ("BOOL", (1,)),
}
NUMPY = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}
SITES = 5


def build(path: Path, seed: int = 0, inputs: tuple[str, ...] = tuple(INPUTS)) -> Path:
    """Write the model (with the named subset of INPUTS) to `path`; return `path`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    types = {"FP32": TensorProto.FLOAT, "FP16": TensorProto.FLOAT16, "INT64": TensorProto.INT64}
    types |= {"INT32": TensorProto.INT32, "BOOL": TensorProto.BOOL}
    init = []
    nodes = []

    def const(name: str, value: np.ndarray) -> str:
        init.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    parts = []  # [-1, k] float32 pieces, concatenated into the hidden features
    if "image" in inputs:
        nodes.append(helper.make_node("Flatten", ["image"], ["image_flat"], axis=1))
        parts.append("image_flat")
    if "tabular" in inputs:
        nodes.append(helper.make_node("Cast", ["tabular"], ["tabular_f"], to=TensorProto.FLOAT))
        parts.append("tabular_f")
    if "site" in inputs:
        emb = const("site_embedding", rng.normal(size=(SITES, 2)).astype(np.float32))
        nodes.append(helper.make_node("Gather", [emb, "site"], ["site_g"], axis=0))  # [-1, 1, 2]
        nodes.append(helper.make_node("Flatten", ["site_g"], ["site_f"], axis=1))
        parts.append("site_f")
    for name in ("count", "flag"):
        if name in inputs:
            nodes.append(helper.make_node("Cast", [name], [f"{name}_f"], to=TensorProto.FLOAT))
            parts.append(f"{name}_f")
    width = {"image_flat": 16, "tabular_f": 3, "site_f": 2, "count_f": 1, "flag_f": 1}
    features = sum(width[p] for p in parts)
    nodes.append(helper.make_node("Concat", parts, ["features"], axis=1))
    w1 = const("w1", (rng.normal(size=(features, 8)) * 0.5).astype(np.float32))
    b1 = const("b1", rng.normal(size=(8,)).astype(np.float32))
    nodes.append(helper.make_node("Gemm", ["features", w1, b1], ["h_lin"]))
    nodes.append(helper.make_node("Relu", ["h_lin"], ["hidden"]))
    w2 = const("w2", rng.normal(size=(8, 3)).astype(np.float32))
    b2 = const("b2", rng.normal(size=(3,)).astype(np.float32))
    nodes.append(helper.make_node("Gemm", ["hidden", w2, b2], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    w3 = const("w3", rng.normal(size=(8, 1)).astype(np.float32))
    b3 = const("b3", np.zeros((1,), np.float32))
    nodes.append(helper.make_node("Gemm", ["hidden", w3, b3], ["score"]))
    graph = helper.make_graph(
        nodes,
        "multi_io",
        [helper.make_tensor_value_info(n, types[INPUTS[n][0]], ["batch", *INPUTS[n][1]]) for n in inputs],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1]),
        ],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def feeds(rows: int, seed: int = 1, inputs: tuple[str, ...] = tuple(INPUTS)) -> dict[str, np.ndarray]:
    """Random rows for every input, in the input's own dtype."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in inputs:
        datatype, shape = INPUTS[name]
        if datatype == "BOOL":
            out[name] = rng.random((rows, *shape)) < 0.5
        elif name == "site":
            out[name] = rng.integers(0, SITES, (rows, *shape)).astype(np.int64)
        elif datatype == "INT32":
            out[name] = rng.integers(0, 4, (rows, *shape)).astype(np.int32)
        else:
            out[name] = rng.random((rows, *shape)).astype(NUMPY[datatype])
    return out


def reference(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs in onnxruntime (the framework's own answer)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs), strict=True))
