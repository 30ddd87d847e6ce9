"""A model with two inputs over the wire in gRPC: `trtforge convert` (in this process) then `trtforge
serve` (a real CLI process, onnxruntime backend) asked by the unmodified `tritonclient.grpc` client in this
process.

The server runs in its own process: tritonclient.grpc and trtforge's generated stubs register the same
`inference.*` protobuf symbols, and one process cannot hold both. The model is
tests/runtime/convert/multi_io.py's with two inputs, `image` FP32 [-1, 4, 4] and `site` INT64 [-1, 1]
(an embedding row), and two outputs; the answers are onnxruntime's on the ONNX file. A missing input, an
extra input, a wrong datatype and a wrong shape are INVALID_ARGUMENT naming the input, and the server
stays ready.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import multi_io
import numpy as np
import pytest
import tritonclient.grpc as tc
from serve_support import convert_onnx, serve_process
from served_checks import assert_same, infer_grpc
from tritonclient.utils import InferenceServerException

NAME = "two-inputs"
INPUTS = ("image", "site")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    model = multi_io.build(tmp_path_factory.mktemp("grpc-two-inputs") / "m.onnx", inputs=INPUTS)
    with serve_process(convert_onnx(model, NAME), name=NAME) as served:
        yield served.grpc, model


def test_metadata_lists_both_inputs_with_their_types(server: tuple[str, Path]) -> None:
    target, _ = server
    with tc.InferenceServerClient(target) as client:
        meta = client.get_model_metadata(NAME, as_json=True)
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("image", "FP32", ["-1", "4", "4"]),
        ("site", "INT64", ["-1", "1"]),
    ]
    assert [t["name"] for t in meta["outputs"]] == ["probabilities", "score"]


@pytest.mark.parametrize("rows", [1, 7, 16, 40])
def test_both_inputs_in_and_both_outputs_out(server: tuple[str, Path], rows: int) -> None:
    """40 rows: above the profile's max of 16, split by the batcher and answered whole."""
    target, model = server
    feeds = multi_io.feeds(rows, seed=rows, inputs=INPUTS)
    assert_same(infer_grpc(target, NAME, feeds), multi_io.reference(model, feeds), atol=1e-5)


def test_outputs_selects_one(server: tuple[str, Path]) -> None:
    target, model = server
    feeds = multi_io.feeds(5, seed=3, inputs=INPUTS)
    served = infer_grpc(target, NAME, feeds, ["score"])
    assert list(served) == ["score"]
    assert_same(served, {"score": multi_io.reference(model, feeds)["score"]}, atol=1e-5)


def _input(name: str, array: np.ndarray, datatype: str) -> tc.InferInput:
    inp = tc.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array)
    return inp


def _good() -> dict[str, np.ndarray]:
    return multi_io.feeds(2, seed=5, inputs=INPUTS)


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ([_input("image", _good()["image"], "FP32")], "missing input tensor(s) 'site'"),
        (
            [
                _input("image", _good()["image"], "FP32"),
                _input("site", _good()["site"], "INT64"),
                _input("extra", np.ones((2, 1), np.float32), "FP32"),
            ],
            "unknown input tensor 'extra'",
        ),
        (
            [
                _input("image", _good()["image"], "FP32"),
                _input("site", _good()["site"].astype(np.int32), "INT32"),
            ],
            "input tensor 'site': expected datatype INT64, received INT32",
        ),
        (
            [
                _input("image", _good()["image"].reshape(2, 16), "FP32"),
                _input("site", _good()["site"], "INT64"),
            ],
            "input tensor 'image': expected shape [-1, 4, 4], received [2, 16]",
        ),
    ],
    ids=["missing", "extra", "datatype", "shape"],
)
def test_bad_inputs_are_invalid_argument_naming_the_input(
    server: tuple[str, Path], inputs: list[tc.InferInput], fragment: str
) -> None:
    target, model = server
    with tc.InferenceServerClient(target) as client:
        with pytest.raises(InferenceServerException) as exc:
            client.infer(NAME, inputs)
        assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert fragment in (exc.value.message() or "")
        assert client.is_model_ready(NAME)  # a bad request costs nothing else
    feeds = _good()
    assert_same(infer_grpc(target, NAME, feeds), multi_io.reference(model, feeds), atol=1e-5)
