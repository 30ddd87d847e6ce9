"""Post-build verification of an engine with two outputs, through the pycuda buffers on a real GPU.

`TensorRTBuilder.verify` runs the built engine on the gate rows through `EngineRunner` (pycuda pinned +
device buffers, one stream) and judges every output against the fp32 model. No TensorRT engine can run
on the H200 test machine (docs/gpu-tests.md), so here a CUDA kernel stands where `execute_async_v3` runs:
it computes the imported iris model of examples/iris_two_outputs.py (standardize, Gemm, softmax, argmax)
from the model's own weights, on the buffers' stream, writing both outputs (FP32 `probabilities`, INT64
`species`) into their device buffers. `engine_outputs` + `judge_engine` (the code `verify` runs) then
check both against onnxruntime's answer on the ONNX model, through the real accuracy gate; a kernel that
gets one class wrong is refused naming the `species` output, which a first-output-only check missed.

Imports numpy, pytest, pycuda, onnx, onnxruntime, scikit-learn and the runtime package (PYTHONPATH=runtime;
pydantic from the carried wheels). Run: `python3 -m pytest -m gpu tests/runtime/trt/test_verify_gpu.py`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

cuda = pytest.importorskip(
    "pycuda.driver",
    reason="pycuda is not installed: GPU tests run on a CUDA machine (docs/gpu-tests.md)",
)
try:
    cuda.init()
    _DEVICES = cuda.Device.count()
except Exception as exc:  # no driver / no device
    pytest.skip(f"no usable CUDA driver or GPU: {exc}", allow_module_level=True)
if _DEVICES == 0:
    pytest.skip("no CUDA GPU visible", allow_module_level=True)
pytest.importorskip("onnxruntime", reason="the gate's fp32 reference runs in onnxruntime")
pytest.importorskip("sklearn", reason="the iris example model is fitted by scikit-learn")

from trtforge_runtime.convert.builders.base import VerifySamples  # noqa: E402
from trtforge_runtime.convert.builders.tensorrt import engine_outputs, judge_engine  # noqa: E402
from trtforge_runtime.convert.gate import Gate, Limits  # noqa: E402
from trtforge_runtime.errors import AccuracyGateError  # noqa: E402
from trtforge_runtime.trt.cuda_buffers import BufferPool, BufferSpec, CudaContext, StreamBuffers  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "iris_two_outputs.py"
MAX_BATCH = 16  # the stand-in engine's profile max: 150 rows go through in 10 chunks
IRIS_KERNEL = r"""
extern "C" __global__ void iris(const float *x, const float *mean, const float *std_, const float *w,
                                const float *b, float *probabilities, long long *species, long rows,
                                long wrong_row) {
    long r = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float logits[3];
    for (int k = 0; k < 3; ++k) {
        float z = b[k];
        for (int j = 0; j < 4; ++j) z += (x[r * 4 + j] - mean[j]) / std_[j] * w[j * 3 + k];
        logits[k] = z;
    }
    int best = 0;
    for (int k = 1; k < 3; ++k) if (logits[k] > logits[best]) best = k;
    float total = 0.0f, e[3];
    for (int k = 0; k < 3; ++k) { e[k] = expf(logits[k] - logits[best]); total += e[k]; }
    for (int k = 0; k < 3; ++k) probabilities[r * 3 + k] = e[k] / total;
    species[r] = r == wrong_row ? (best + 1) % 3 : best;
}
"""


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("iris_two_outputs_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class KernelEngine:
    """An engine's `max_batch` and `run` as `EngineRunner` has them, over the same pycuda buffers: inputs
    copied in on the stream, the kernel enqueued on it where `execute_async_v3` runs, every output copied
    out, one synchronize. `wrong_row` (of each chunk) gets the next class instead of its own."""

    max_batch = MAX_BATCH

    def __init__(self, ctx: CudaContext, module: Any, weights: dict[str, np.ndarray], wrong_row: int = -1):
        self.ctx, self.kernel, self.wrong_row = ctx, module.get_function("iris"), wrong_row
        self.pool = BufferPool()
        f32 = np.dtype(np.float32)
        self.specs = [
            BufferSpec("features", f32, (MAX_BATCH, 4), True),
            *(BufferSpec(name, f32, a.shape, True) for name, a in weights.items()),
            BufferSpec("probabilities", f32, (MAX_BATCH, 3), False),
            BufferSpec("species", np.dtype(np.int64), (MAX_BATCH,), False),
        ]
        self.weights = weights
        self.calls = 0

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(inputs["features"])
        with self.ctx.active():
            buffers = self.pool.get(0, lambda: self.specs)

            def enqueue(buf: StreamBuffers) -> dict[str, tuple[int, ...]]:
                addr = buf.device_address
                self.kernel(
                    *(np.uintp(addr(n)) for n in ("features", "mean", "std", "weights", "bias")),
                    np.uintp(addr("probabilities")),
                    np.uintp(addr("species")),
                    np.int64(rows),
                    np.int64(self.wrong_row),
                    block=(32, 1, 1),
                    grid=((rows + 31) // 32, 1),
                    stream=buf.stream,
                )
                return {"probabilities": (rows, 3), "species": (rows,)}

            self.calls += 1
            return buffers.run({**inputs, **self.weights}, enqueue)

    def close(self) -> None:
        with self.ctx.active():
            self.pool.free()


@pytest.fixture(scope="module")
def ctx() -> Iterator[CudaContext]:
    context = CudaContext(0)
    yield context
    context.close()


@pytest.fixture(scope="module")
def kernels(ctx: CudaContext) -> Any:
    from pycuda.compiler import SourceModule

    with ctx.active():
        return SourceModule(IRIS_KERNEL, no_extern_c=True)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray], np.ndarray]:
    """(the example's ONNX model, its weights by initializer name, the 150 iris rows)."""
    import onnx
    from onnx import numpy_helper
    from sklearn.datasets import load_iris

    path = _example().write(tmp_path_factory.mktemp("iris") / "iris-two-outputs.onnx")
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    assert set(weights) == {"mean", "std", "weights", "bias"}
    return path, weights, load_iris().data.astype(np.float32)


def _samples(model: Path, x: np.ndarray) -> VerifySamples:
    limits = Limits(max_top1_drop=0.0, max_abs_diff=0.05)  # examples/iris-two-outputs.yaml's bounds
    gate = Gate(model, "features", "probabilities", x, limits, output_names=["probabilities", "species"])
    return VerifySamples(gate, "fp32")


def test_every_output_of_the_engine_is_verified(ctx: CudaContext, kernels: Any, iris: Any) -> None:
    model, weights, x = iris
    engine = KernelEngine(ctx, kernels, weights)
    try:
        outputs = engine_outputs(engine, {"features": x}, ["probabilities", "species"])
    finally:
        engine.close()
    assert engine.calls == -(-len(x) // MAX_BATCH)  # chunked by the profile's max batch
    assert outputs["probabilities"].dtype == np.float32 and outputs["probabilities"].shape == (150, 3)
    assert outputs["species"].dtype == np.int64 and outputs["species"].shape == (150,)
    report = judge_engine("the test engine", _samples(model, x), outputs)
    assert report["rows"] == 150 and report["passed"]
    assert {c["output"] for c in report["checks"]} == {"probabilities", "species"}
    assert set(report["outputs"]) == {"probabilities", "species"}
    assert report["outputs"]["species"]["maxAbsDiff"] == 0.0  # every class exactly onnxruntime's
    assert report["outputs"]["probabilities"]["maxAbsDiff"] < 1e-5


def test_a_wrong_second_output_fails_naming_it(ctx: CudaContext, kernels: Any, iris: Any) -> None:
    model, weights, x = iris
    engine = KernelEngine(ctx, kernels, weights, wrong_row=3)  # one class wrong in every chunk
    try:
        outputs = engine_outputs(engine, {"features": x}, ["probabilities", "species"])
    finally:
        engine.close()
    with pytest.raises(AccuracyGateError, match=r"the test engine disagrees .* 150 rows: output 'species'"):
        judge_engine("the test engine", _samples(model, x), outputs)
    # the first output alone is right: judging only it would have passed this engine
    report = judge_engine("the test engine", _samples(model, x), {"probabilities": outputs["probabilities"]})
    assert report["passed"]
