"""Exporting a trained Keras model: a SavedModel, a deterministic ONNX file, and their parity check.

ONNX comes from `tf2onnx.convert.from_function` on the model's inference function (tf2onnx's
`from_keras` fails on Keras 3 models). tf2onnx names dynamic dimensions from a process-wide counter
(`unk__6`), so the graph is canonicalised afterwards: the batch dimension of the input and the output is
`batch`, other symbolic dimensions are renumbered in order of appearance, and the doc string is
cleared. The nodes and constants tf2onnx inserts (`Transpose__28` around a Conv2D, `const_axes__19`) are
numbered from a process-wide counter too, advanced a number of times that depends on Python's hash seed:
they are renumbered in order of appearance. With the stable layer names of `architecture`, the same
weights give the same bytes, in one process or in several.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime.errors import TrainingError

OPSET = 17
BATCH_DIM = "batch"
# tf2onnx's generated names: utils.make_name's `NAME__<counter>`, with an optional `:<output index>`
GENERATED_NAME = re.compile(r"^(?P<stem>(?P<base>.+?)__\d+)(?P<port>:\d+)?$")


@dataclass(frozen=True)
class Parity:
    """How closely onnxruntime reproduces TensorFlow on held-out rows."""

    max_abs_diff: float
    argmax_agreement: float
    rows: int
    scale: float = 1.0  # the largest |output| of TensorFlow: regression outputs are compared relative to it

    def as_json(self) -> dict[str, Any]:
        return {"maxAbsDiff": self.max_abs_diff, "argmaxAgreement": self.argmax_agreement, "rows": self.rows}

    def acceptable(self, max_abs_diff: float, min_agreement: float) -> bool:
        """Within `max_abs_diff` of TensorFlow (relative to outputs larger than 1) and agreeing enough."""
        return (
            self.max_abs_diff <= max_abs_diff * max(1.0, self.scale)
            and self.argmax_agreement >= min_agreement
        )


def export_saved_model(model: Any, path: Path) -> None:
    """Keras's SavedModel export with a `serve` signature that keeps the trained tensor names.

    `model.export` names the signature's output `output_0`; here the input and output keys are the
    model's own input and output names (`pixels` -> `probabilities`), so a SavedModel converted later
    (tf2onnx, `spec.model.source`) serves under the trained names.
    """
    import keras
    import tensorflow as tf

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        model.export(str(path), format="tf_saved_model", verbose=False)
        return
    input_name = str(model.inputs[0].name)
    output_name = str(model.output_names[0]) if getattr(model, "output_names", None) else "output_0"
    spec = tf.TensorSpec([None, *(int(d) for d in model.inputs[0].shape[1:])], tf.float32, name=input_name)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda x: {output_name: model(x, training=False)}, input_signature=[spec])
    archive.write_out(str(path), verbose=False)


def export_onnx(model: Any, path: Path, *, input_name: str, output_name: str) -> None:
    """Convert a Keras `model` to ONNX (opset 17, dynamic batch) and write it to `path` deterministically."""
    import tensorflow as tf

    input_shape = tuple(int(d) for d in model.input.shape[1:])
    spec = tf.TensorSpec([None, *input_shape], tf.float32, name=input_name)

    @tf.function(input_signature=[spec])
    def serve(x: Any) -> dict[str, Any]:
        return {output_name: model(x, training=False)}

    export_function_onnx(serve, [spec], path, input_names=[input_name], output_names=[output_name])


def export_function_onnx(
    serve: Any, specs: list[Any], path: Path, *, input_names: list[str], output_names: list[str]
) -> None:
    """Convert a tf.function of the inputs `specs` (in order) returning {output_name: tensor} to ONNX at
    `path`, whose inputs are named `input_names` and outputs `output_names`."""
    import onnx
    import tf2onnx

    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=specs, opset=OPSET)
    except Exception as exc:  # tf2onnx raises bare exceptions for unsupported ops
        raise TrainingError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    canonicalize(proto, input_names=input_names, output_names=output_names)
    onnx.checker.check_model(proto, full_check=True)
    path.write_bytes(proto.SerializeToString(deterministic=True))


def canonicalize(proto: Any, *, input_names: list[str], output_names: list[str]) -> None:
    """Stable names for symbolic dimensions and no run-specific text, in place."""
    graph = proto.graph
    # tf2onnx sometimes lists constants (e.g. a Normalization layer's mean) as graph inputs too; since IR
    # version 4 initializers need not be inputs, and serving must see only the real input.
    constants = {t.name for t in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in constants]
    if len(real_inputs) != len(graph.input):
        del graph.input[:]
        graph.input.extend(real_inputs)
    got_in, got_out = [i.name for i in graph.input], [o.name for o in graph.output]
    if got_in != list(input_names) or sorted(got_out) != sorted(output_names):
        raise TrainingError(
            f"ONNX export produced inputs {got_in} and outputs {got_out}; expected {list(input_names)} "
            f"and {list(output_names)}"
        )
    renames: dict[str, str] = {}
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_param:
            renames.setdefault(dims[0].dim_param, BATCH_DIM)
            dims[0].dim_param = BATCH_DIM
    counter = 0
    for value in (*graph.input, *graph.output, *graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param and dim.dim_param != BATCH_DIM:
                if dim.dim_param not in renames:
                    renames[dim.dim_param] = f"d{counter}"
                    counter += 1
                dim.dim_param = renames[dim.dim_param]
    renumber_generated_names(graph, keep={*got_in, *got_out})
    proto.doc_string = ""
    graph.doc_string = ""
    graph.name = "trtforge"


def _graphs(graph: Any) -> list[Any]:
    """`graph` and every subgraph (If / Loop bodies) below it, outer first."""
    found, stack = [], [graph]
    while stack:
        g = stack.pop(0)
        found.append(g)
        for node in g.node:
            for attr in node.attribute:
                stack.extend([attr.g] if attr.HasField("g") else [])
                stack.extend(attr.graphs)
    return found


def renumber_generated_names(graph: Any, *, keep: set[str]) -> None:
    """Rename tf2onnx's counter-numbered names (`Transpose__28`, its output `Transpose__28:0`,
    `const_axes__19`) to `Transpose__0`, `const__1`, ... in order of first appearance (nodes in graph
    order, then initializers), in place; every reference follows, and the names in `keep` (served inputs
    and outputs) stay. The new stem is the producing node's op type, or `const` for an initializer: which
    of two equal constants tf2onnx keeps (`const_starts` or `const_axes`) varies too."""
    graphs = _graphs(graph)
    taken = set(keep)
    bases: dict[str, str] = {}  # generated stem -> the op type that produces it, or const
    for g in graphs:
        for node in g.node:
            taken.update(n for n in (node.name, *node.input, *node.output) if not GENERATED_NAME.match(n))
            for name in (node.name, *node.output):
                if (match := GENERATED_NAME.match(name)) is not None:
                    bases.setdefault(match["stem"], node.op_type)
        for tensor in g.initializer:
            if (match := GENERATED_NAME.match(tensor.name)) is None:
                taken.add(tensor.name)
            else:
                bases[match["stem"]] = "const"
    stems: dict[str, str] = {}

    def rename(name: str) -> str:
        match = GENERATED_NAME.match(name)
        if name in keep or match is None:
            return name
        if match["stem"] not in stems:
            base, index = bases.get(match["stem"], match["base"]), len(stems)
            while f"{base}__{index}" in taken:
                index += 1
            stems[match["stem"]] = f"{base}__{index}"
            taken.add(stems[match["stem"]])
        return stems[match["stem"]] + (match["port"] or "")

    for g in graphs:
        for node in g.node:
            node.name = rename(node.name)
            node.input[:] = [rename(n) for n in node.input]
            node.output[:] = [rename(n) for n in node.output]
        for tensor in g.initializer:
            tensor.name = rename(tensor.name)
        for value in (*g.value_info, *g.input, *g.output):
            value.name = rename(value.name)
        # tf2onnx orders these by the names it generated: order them by the new names (a graph without
        # generated names keeps its bytes)
        for field in (g.initializer, g.value_info) if stems else ():
            ordered = sorted(field, key=lambda item: str(item.name))
            copies = [type(item)() for item in ordered]
            for copy, item in zip(copies, ordered, strict=True):
                copy.CopyFrom(item)
            del field[:]
            field.extend(copies)


def tensor_descriptions(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Manifest entries `{name, shape (-1 = dynamic), datatype}` of an ONNX file's inputs and outputs."""
    import onnx

    from trtforge_runtime.tensors import onnx_io

    inputs, outputs = onnx_io(onnx.load(str(path), load_external_data=False))
    return [t.to_json() for t in inputs], [t.to_json() for t in outputs]


def onnx_parity(
    model: Any,
    onnx_path: Path,
    x: np.ndarray | dict[str, np.ndarray],
    *,
    input_name: str | None = None,
    task: str = "classification",
) -> Parity:
    """Run `x` through TensorFlow (`model`: a Keras model or a function of a batch) and onnxruntime;
    max |difference| and the fraction of equal decisions (classes or labels; 1.0 for regression).

    `x` is one float array fed as `input_name`, or one array per input name (each in its own dtype)."""
    import onnxruntime as ort

    from trtforge_runtime import tasks
    from trtforge_runtime.train.loop import predict, rows

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    if isinstance(x, dict):
        feeds = x
    else:
        assert input_name is not None, "a single array needs its input name"
        feeds = {input_name: x.astype(np.float32)}
    n = rows(x)
    got = np.asarray(session.run(None, feeds)[0])
    want = predict(model, x)
    if got.shape != want.shape:
        raise TrainingError(f"ONNX output shape {got.shape} differs from TensorFlow's {want.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if n else 0.0
    scale = float(np.max(np.abs(want))) if n else 0.0
    agree = tasks.agreement(task, want, got)
    return Parity(max_abs_diff=diff, argmax_agreement=agree, rows=n, scale=scale)
