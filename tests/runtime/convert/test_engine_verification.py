"""Post-build verification (`TensorRTBuilder.verify`'s `engine_outputs` + `judge_engine`) judges every
output of the engine, not only the first.

A TensorRT engine runs only on a GPU with TensorRT (tests/runtime/trt/test_verify_gpu.py runs this code
through the real pycuda buffers on the H200); here onnxruntime stands where the engine runs, on the
imported two-output iris model of examples/iris_two_outputs.py, with `EngineRunner`'s `max_batch` and `run`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from trtforge_runtime.convert.builders.base import VerifySamples
from trtforge_runtime.convert.builders.tensorrt import engine_outputs, judge_engine
from trtforge_runtime.convert.gate import Gate, Limits
from trtforge_runtime.errors import AccuracyGateError, ConversionError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "iris_two_outputs.py"
OUTPUTS = ["probabilities", "species"]


class OnnxEngine:
    """`EngineRunner`'s surface over an onnxruntime session; `change` edits each answer."""

    def __init__(self, model: Path, max_batch: int, change: Any = None) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.max_batch, self.change, self.rows = max_batch, change, []

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.rows.append(len(inputs["features"]))
        names = [o.name for o in self.session.get_outputs()]
        out = dict(zip(names, self.session.run(names, dict(inputs)), strict=True))
        return self.change(out) if self.change else out


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    from sklearn.datasets import load_iris

    spec = importlib.util.spec_from_file_location("iris_two_outputs_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.write(tmp_path_factory.mktemp("iris") / "iris.onnx")
    return model, load_iris().data.astype(np.float32)


def _samples(model: Path, x: np.ndarray) -> VerifySamples:
    gate = Gate(model, "features", OUTPUTS[0], x, Limits(0.0, 0.05), output_names=OUTPUTS)
    return VerifySamples(gate, "fp16")


def test_both_outputs_are_run_in_profile_sized_chunks_and_judged(iris: tuple[Path, np.ndarray]) -> None:
    model, x = iris
    engine = OnnxEngine(model, max_batch=64)
    outputs = engine_outputs(engine, {"features": x}, OUTPUTS)
    assert engine.rows == [64, 64, 22]
    assert outputs["probabilities"].dtype == np.float32 and outputs["species"].dtype == np.int64
    report = judge_engine("engine e", _samples(model, x), outputs)
    assert report["passed"] and report["rows"] == 150 and report["precision"] == "fp16"
    assert [(c["output"], c["metric"]) for c in report["checks"]] == [
        ("probabilities", "top1Drop"),
        ("probabilities", "maxAbsDiff"),
        ("species", "top1Drop"),
        ("species", "maxAbsDiff"),
    ]


def test_a_wrong_class_in_the_second_output_is_refused_naming_it(iris: tuple[Path, np.ndarray]) -> None:
    model, x = iris

    def one_wrong_class(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        species = out["species"].copy()
        species[0] = (species[0] + 1) % 3
        return out | {"species": species}

    outputs = engine_outputs(OnnxEngine(model, 32, one_wrong_class), {"features": x}, OUTPUTS)
    with pytest.raises(AccuracyGateError) as err:
        judge_engine("the built tensorrt engine e.engine", _samples(model, x), outputs)
    message = str(err.value)
    assert message.startswith("the built tensorrt engine e.engine disagrees with the fp32 model on 150 rows")
    assert "output 'species': maxAbsDiff " in message and "'probabilities'" not in message


def test_an_output_the_engine_lacks_is_named(iris: tuple[Path, np.ndarray]) -> None:
    model, x = iris
    engine = OnnxEngine(model, 150, lambda out: {"probabilities": out["probabilities"]})
    with pytest.raises(ConversionError, match=r"the engine has no output 'species' \(its outputs: probabil"):
        engine_outputs(engine, {"features": x}, OUTPUTS)
