"""ONNX export is byte-stable: the same Keras model gives the same model.onnx (and digest) every time.

tf2onnx names the nodes it inserts (the Transposes around a Conv2D, `const_axes` initializers) from a
process-wide counter, advanced a number of times that depends on Python's hash seed; a CNN exported twice
in one process, or in two processes, got different names and so different digests.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXPORT_CNN = """
import sys
from pathlib import Path

import keras
from trtforge_runtime.train.export import export_onnx

keras.utils.set_random_seed(1)
image = keras.Input((8, 8, 1), name="image")
x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(image)
x = keras.layers.MaxPooling2D(2, name="pool")(x)
out = keras.layers.Dense(3, activation="softmax", name="probabilities")(keras.layers.Flatten(name="flat")(x))
model = keras.Model(image, out)
for target in sys.argv[1:]:
    export_onnx(model, Path(target), input_name="image", output_name="probabilities")
"""


def _export(tmp_path: Path, hash_seed: str, *names: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "CUDA_VISIBLE_DEVICES": ""}
    targets = [str(tmp_path / name) for name in names]
    subprocess.run([sys.executable, "-c", EXPORT_CNN, *targets], env=env, check=True, capture_output=True)
    return [hashlib.sha256(Path(t).read_bytes()).hexdigest() for t in targets]


def test_a_cnn_exports_to_the_same_bytes_in_one_process_and_across_processes(tmp_path: Path) -> None:
    first, again = _export(tmp_path, "0", "a.onnx", "b.onnx")
    assert first == again, "the second export in one process differs (tf2onnx's name counter)"
    (other,) = _export(tmp_path, "1", "c.onnx")
    assert other == first, "another process (hash seed) exported different bytes"


def test_generated_names_are_renumbered_and_every_reference_follows() -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from trtforge_runtime.train.export import canonicalize

    def graph(offset: int) -> onnx.ModelProto:
        t, axes = f"Transpose__{7 + offset}", f"const_axes__{3 + offset}"
        nodes = [
            helper.make_node("Transpose", ["x__1"], [f"{t}:0"], name=t, perm=[1, 0]),
            helper.make_node("Unsqueeze", [f"{t}:0", axes], ["y"], name=f"Unsqueeze__{9 + offset}"),
        ]
        g = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x__1", TensorProto.FLOAT, ["unk__5", 2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, "unk__5"])],
            [numpy_helper.from_array(np.array([1], np.int64), axes)],
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    a, b = graph(0), graph(21)
    for m in (a, b):
        canonicalize(m, input_names=["x__1"], output_names=["y"])
        onnx.checker.check_model(m, full_check=True)
    assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)
    assert [i.name for i in a.graph.input] == ["x__1"]  # a served name is never renamed
    names = [n.name for n in a.graph.node]
    assert names == ["Transpose__0", "Unsqueeze__1"]
    assert list(a.graph.node[1].input) == ["Transpose__0:0", "const__2"]
    assert [t.name for t in a.graph.initializer] == ["const__2"]
