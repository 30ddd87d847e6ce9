"""spec.engine.inputs: optimization profiles of dynamic dimensions after the batch, checked against the
model before any work, built into the engine and recorded in engine.json for the server's shape checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from trtforge_runtime.convert import profiles
from trtforge_runtime.errors import ConversionError
from trtforge_runtime.spec.model import InputProfile
from trtforge_runtime.tensors import TensorInfo


def sequence_model(path: Path) -> Path:
    """`tokens` FP32 [batch, seq, 4] (seq dynamic) and `extra` FP32 [batch, 3] -> softmax [batch, 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(7, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["tokens"], ["pooled"], axes=[1], keepdims=0),
            helper.make_node("Concat", ["pooled", "extra"], ["features"], axis=1),
            helper.make_node("Gemm", ["features", "w", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "sequence",
        [
            helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "seq", 4]),
            helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["batch", 3]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _spec(tmp_path: Path, tools: Any, model: Path, inputs: list[dict[str, Any]], **engine: Any) -> Path:
    src = {"source": {"uri": str(model), "format": "onnx"}}
    eng = {"backend": "tensorrt-rtx", "precision": "fp16", "inputs": inputs} | engine
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tools.manifest(eng, src, name="seq")))
    return path


SEQ = {"name": "tokens", "dims": [{"min": 1, "opt": 8, "max": 16}, {"min": 4, "opt": 4, "max": 4}]}


@pytest.mark.parametrize("backend", ["tensorrt-rtx", "onnxruntime"])
def test_dynamic_sequence_dimension_gets_its_profile(tmp_path: Path, tools: Any, backend: str) -> None:
    model = sequence_model(tmp_path / "m.onnx")
    spec = _spec(tmp_path, tools, model, [SEQ], backend=backend)
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    doc = tools.read(tmp_path / "e")
    tokens, extra = doc["model"]["inputs"]
    assert tokens["shape"] == [-1, -1, 4]
    assert tokens["profile"] == {"min": [1, 1, 4], "opt": [8, 8, 4], "max": [64, 16, 4]}
    assert "profile" not in extra  # nothing after its batch dimension varies
    assert doc["referenceSample"]["inputs"]["tokens"]["shape"][1:] == [8, 4]  # synthetic rows at opt


def test_the_engine_accepts_the_whole_profile_and_the_cache_tells_profiles_apart(
    tmp_path: Path, tools: Any
) -> None:
    from trtforge_runtime.convert.builders.base import BuildRequest
    from trtforge_runtime.convert.builders.rtx import RtxBuilder
    from trtforge_runtime.spec.model import BatchProfile

    model = sequence_model(tmp_path / "m.onnx")
    ranges = profiles.input_ranges(
        [TensorInfo("tokens", (-1, -1, 4), "FP32"), TensorInfo("extra", (-1, 3), "FP32")],
        [InputProfile.model_validate(SEQ)],
    )
    dims = tuple((n, r) for n, r in ranges.items() if r[0] != r[2])
    request = BuildRequest(model, "fp32", BatchProfile(min=1, opt=8, max=64), 256, "8.9", None, dims)
    RtxBuilder().build(request, tmp_path / "x.engine")
    assert (tmp_path / "x.engine").stat().st_size > 0
    # a second profile is a different cache key
    spec = _spec(tmp_path, tools, model, [SEQ])
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") == 0
    wider = {"name": "tokens", "dims": [{"min": 1, "opt": 8, "max": 32}, {"min": 4, "opt": 4, "max": 4}]}
    spec = _spec(tmp_path, tools, model, [wider])
    assert tools.run(spec, None, tmp_path / "f", tmp_path / "c") == 0
    a, b = tools.read(tmp_path / "e")["engines"][0], tools.read(tmp_path / "f")["engines"][0]
    assert a["cacheKey"] != b["cacheKey"] and not b["cacheHit"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "model input 'tokens' has dynamic dimensions after the batch dimension"),
        (
            [{"name": "token", "dims": SEQ["dims"]}],
            "spec.engine.inputs[0].name 'token' is not an input of the model",
        ),
        (
            [{"name": "tokens", "dims": SEQ["dims"][:1]}],
            "spec.engine.inputs[0].dims has 1 entries, but input 'tokens'",
        ),
        (
            [{"name": "tokens", "dims": [SEQ["dims"][0], {"min": 2, "opt": 4, "max": 8}]}],
            "spec.engine.inputs[0].dims[1]: input 'tokens' fixes dimension 2 at 4",
        ),
        ([SEQ, SEQ], "spec.engine.inputs[1].name 'tokens': the input has a profile already"),
    ],
    ids=["undeclared", "unknown-input", "dims-count", "outside-static-dim", "twice"],
)
def test_profiles_that_do_not_fit_the_model_are_refused_before_any_work(
    tmp_path: Path, tools: Any, capsys: Any, inputs: list[dict[str, Any]], message: str
) -> None:
    model = sequence_model(tmp_path / "m.onnx")
    spec = _spec(tmp_path, tools, model, inputs)
    assert tools.run(spec, None, tmp_path / "e", tmp_path / "c") != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "e").exists() and not (tmp_path / "c").exists()


def test_unordered_dimension_is_refused_even_without_the_validator() -> None:
    from trtforge_runtime.spec.model import DimensionProfile

    bad = InputProfile.model_construct(
        name="tokens", dims=[DimensionProfile.model_construct(min=8, opt=4, max=16)]
    )
    with pytest.raises(ConversionError, match=r"dims\[0\] needs min <= opt <= max, got 8, 4, 16"):
        profiles.input_ranges([TensorInfo("tokens", (-1, -1), "FP32")], [bad])
