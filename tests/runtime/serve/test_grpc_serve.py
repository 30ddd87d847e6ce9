"""`trtforge serve` end to end over gRPC: the real CLI process (uvloop, batcher, onnxruntime backend)
with REST and gRPC on, asked by the unmodified `tritonclient.grpc` client; SIGTERM drains and exits 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
from serve_support import INPUT, OUTPUT, make_engine_dir, reference_outputs
from serve_support import serve_process as start_serve
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def serve_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    engine = make_engine_dir(tmp_path_factory.mktemp("grpc-engine") / "digits")
    with start_serve(engine, name="digits", workers=2) as served:
        yield served.grpc, engine


def test_tritonclient_grpc_against_trtforge_serve(serve_process: tuple[str, Path]) -> None:
    url, engine = serve_process
    with tc.InferenceServerClient(url) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("digits")
        meta = client.get_model_metadata("digits", as_json=True)
        assert meta["inputs"][0]["name"] == INPUT and meta["outputs"][0]["name"] == OUTPUT
        assert client.get_server_metadata(as_json=True)["name"] == "trtforge"

        for rows in (1, 32, 256):
            x = np.random.default_rng(rows).uniform(0, 16, (rows, 64)).astype(np.float32)
            inp = tc.InferInput(INPUT, [rows, 64], "FP32")
            inp.set_data_from_numpy(x)
            result = client.infer("digits", [inp], request_id=f"r{rows}")
            out = result.as_numpy(OUTPUT)
            assert result.get_response().id == f"r{rows}"
            np.testing.assert_allclose(
                out, reference_outputs(engine / "onnxruntime" / "model.onnx", x), atol=1e-5
            )

        bad = tc.InferInput(INPUT, [2, 63], "FP32")
        bad.set_data_from_numpy(np.zeros((2, 63), np.float32))
        with pytest.raises(InferenceServerException) as exc:
            client.infer("digits", [bad])
        assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert f"'{INPUT}'" in (exc.value.message() or "") and "[2, 63]" in (exc.value.message() or "")
        assert client.is_server_ready()
