"""Write an ONNX model with two outputs, as a user would bring one from another framework.

A scikit-learn logistic regression fitted on the bundled iris data (no download), exported by hand with
onnx.helper: input `features` FP32 [batch, 4] (raw centimetres; the standardization is inside the
graph), outputs `probabilities` FP32 [batch, 3] (softmax) and `species` INT64 [batch] (the argmax class).
examples/iris-two-outputs.yaml imports it through spec.model.source:

    python examples/iris_two_outputs.py            # writes examples/iris-two-outputs.onnx
    trtforge local examples/iris-two-outputs.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).with_name("iris-two-outputs.onnx")


def fit() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, weights [4, 3], bias [3]) of a logistic regression on standardized iris features."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    mean, std = x.mean(axis=0), x.std(axis=0)
    clf = LogisticRegression(max_iter=1000, random_state=0).fit((x - mean) / std, y)
    return mean, std, clf.coef_.T, clf.intercept_


def write(out: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    mean, std, weights, bias = (np.asarray(a, np.float32) for a in fit())
    init = [
        numpy_helper.from_array(mean, "mean"),
        numpy_helper.from_array(std, "std"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(bias, "bias"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["scaled"]),
        helper.make_node("Gemm", ["scaled", "weights", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["species"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "iris_two_outputs",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("species", TensorProto.INT64, ["batch"]),
        ],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    print(f"wrote {write(parser.parse_args(argv).output)}")


if __name__ == "__main__":
    main()
