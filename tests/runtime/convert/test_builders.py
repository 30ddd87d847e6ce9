"""Engine builders: the shared profile logic, parser errors with node names, target selection."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from trtforge_runtime.convert.builders import builder_for
from trtforge_runtime.convert.builders.base import (
    BuildRequest,
    check_batch_profile,
    format_parser_errors,
    profile_shapes,
)
from trtforge_runtime.convert.builders.rtx import RtxBuilder
from trtforge_runtime.convert.builders.tensorrt import TensorRTBuilder, select_device_target
from trtforge_runtime.errors import ConversionError, UnsupportedTargetError
from trtforge_runtime.spec.model import BatchProfile
from trtforge_runtime.tensors import TensorInfo


def test_profile_on_the_batch_dimension_of_every_input() -> None:
    inputs = [TensorInfo("a", (-1, 64), "FP32"), TensorInfo("b", (-1, 3, 8, 8), "FP32")]
    shapes = profile_shapes(inputs, BatchProfile(min=2, opt=16, max=128))
    assert shapes == {
        "a": ((2, 64), (16, 64), (128, 64)),
        "b": ((2, 3, 8, 8), (16, 3, 8, 8), (128, 3, 8, 8)),
    }


@pytest.mark.parametrize(
    ("lo", "opt", "hi", "message"),
    [(8, 4, 16, r"min 8 > opt 4"), (1, 32, 16, r"opt 32 > max 16"), (0, 1, 2, r"min must be >= 1")],
)
def test_bad_batch_profile_is_refused_even_without_the_validator(
    lo: int, opt: int, hi: int, message: str
) -> None:
    profile = BatchProfile.model_construct(min=lo, opt=opt, max=hi)  # bypasses the pydantic validator
    with pytest.raises(ConversionError, match=message):
        check_batch_profile(profile)
    with pytest.raises(ConversionError, match=message):
        profile_shapes([TensorInfo("x", (-1, 4), "FP32")], profile)


def test_profile_needs_a_dynamic_batch_dimension() -> None:
    with pytest.raises(ConversionError, match="no dynamic batch dimension"):
        profile_shapes([TensorInfo("x", (1, 4), "FP32")], BatchProfile())
    with pytest.raises(ConversionError, match="only dimension 0 may be dynamic"):
        profile_shapes([TensorInfo("x", (-1, -1), "FP32")], BatchProfile())


def test_parser_error_lines_name_nodes() -> None:
    text = format_parser_errors(
        [
            {"node": 3, "name": "dense/Det", "operator": "Det", "desc": "false"},
            {"node": 5, "desc": "bad attribute value"},
        ]
    )
    assert "node 3 'dense/Det' (Det): the parser's check of this Det failed (false)" in text
    assert "node 5: bad attribute value" in text


def test_builder_selection() -> None:
    assert isinstance(builder_for("tensorrt-rtx"), RtxBuilder)
    assert isinstance(builder_for("tensorrt"), TensorRTBuilder)
    assert builder_for("onnxruntime") is None
    with pytest.raises(UnsupportedTargetError):
        builder_for("openvino")


def test_rtx_builds_every_requested_target_and_names_files() -> None:
    rtx = RtxBuilder()
    assert rtx.select_targets(["8.6", "8.9"]) == ["8.6", "8.9"]
    assert rtx.engine_file("12.0") == "tensorrt-rtx-sm120.engine"
    with pytest.raises(UnsupportedTargetError, match=r"9\.0"):
        rtx.check_target("9.0", "fp16")


def test_tensorrt_builds_for_the_gpu_it_runs_on() -> None:
    assert select_device_target(["8.0", "8.9"], "8.9") == ["8.9"]
    assert TensorRTBuilder(device=lambda: "8.0").select_targets(["8.0", "9.0"]) == ["8.0"]
    assert TensorRTBuilder(device=lambda: "8.0").engine_file("8.0") == "tensorrt-sm80.engine"
    with pytest.raises(
        UnsupportedTargetError, match=r"this GPU has compute capability 9\.0.*not among.*8\.0, 8\.9"
    ):
        TensorRTBuilder(device=lambda: "9.0").select_targets(["8.9", "8.0"])


def test_tensorrt_builder_with_the_real_library(tmp_path: Path, model_dir: Path) -> None:
    """Builds with full TensorRT where it is installed (GPU clusters); skipped elsewhere."""
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("full TensorRT (`tensorrt`) is not installed here: its libs cannot be downloaded in CI")
    builder = TensorRTBuilder()
    try:
        cc = builder.select_targets([builder._device()])[0]
    except ConversionError as exc:
        pytest.skip(f"tensorrt is installed but no GPU is usable: {exc}")
    request = BuildRequest(
        model_dir / "model.onnx", "fp32", BatchProfile(min=1, opt=8, max=64), 256, cc, tmp_path / "t"
    )
    builder.build(request, tmp_path / "e.engine")
    assert (tmp_path / "e.engine").stat().st_size > 0
    assert (tmp_path / "t").stat().st_size > 0  # timing cache persisted


def _det_model() -> bytes:
    """An ONNX model onnxruntime runs but the TensorRT parser refuses (Det)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Reshape", ["pixels", "shape"], ["square"], name="to_square"),
        helper.make_node("Det", ["square"], ["det"], name="weird/Det"),
        helper.make_node("Unsqueeze", ["det", "axis"], ["out"], name="to_column"),
    ]
    graph = helper.make_graph(
        nodes,
        "det",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 1])],
        [
            numpy_helper.from_array(np.array([-1, 8, 8], np.int64), "shape"),
            numpy_helper.from_array(np.array([1], np.int64), "axis"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def det_model() -> bytes:
    return _det_model()


def test_rtx_parser_errors_name_the_node(tmp_path: Path, det_model: bytes) -> None:
    path = tmp_path / "det.onnx"
    path.write_bytes(det_model)
    request = BuildRequest(path, "fp32", BatchProfile(min=1, opt=2, max=4), 64, "8.9")
    with pytest.raises(ConversionError, match=r"cannot parse det\.onnx:\nnode 1 'weird/Det' \(Det\)"):
        RtxBuilder().build(request, tmp_path / "x.engine")
    assert not (tmp_path / "x.engine").exists()


def test_parser_error_through_the_cli(
    tmp_path: Path, det_model: bytes, model_dir: Path, tools: Any, capsys: Any
) -> None:
    folder = tools.write_model_folder(tmp_path / "det", det_model, model_dir)
    spec = tmp_path / "spec.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(tools.manifest({"precision": "fp32"})))
    assert tools.run(spec, folder, tmp_path / "out", tmp_path / "cache") == 6
    err = capsys.readouterr().err
    assert "'weird/Det' (Det)" in err and "tensorrt-rtx ONNX parser cannot parse" in err
    assert not (tmp_path / "out").exists()
    assert not [p for p in (tmp_path / "cache").glob("tensorrt-rtx-*")]
