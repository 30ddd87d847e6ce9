"""The pycuda half of the TensorRT backends, for real on a CUDA GPU (the H200 test machine).

`trt/cuda_buffers.py` holds what `EngineRunner` does around `execute_async_v3`: pinned host and device
buffers sized for a profile's max shapes and allocated once, one CUDA stream per execution context,
async copies in and out, reuse across calls. Here a real CUDA kernel stands where the engine's
`execute_async_v3` runs (enqueued on the same stream between the copies), so every byte goes host ->
device -> kernel -> host as in serving. No TensorRT engine can run on the H200: TensorRT-RTX refuses
compute capability 9.0 and full TensorRT is not installed there; the engine test says so when it skips.

Imports only numpy, pytest, pycuda and the runtime package (PYTHONPATH=runtime): the GPU machine has no
project virtual environment. Run: `python3 -m pytest -m gpu tests/runtime/trt/test_runner_gpu.py`.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import threading
from collections.abc import Iterator, Mapping, Sequence
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

from trtforge_runtime.errors import BackendError, InferenceError  # noqa: E402
from trtforge_runtime.trt import library  # noqa: E402
from trtforge_runtime.trt.cuda_buffers import BufferPool, BufferSpec, CudaContext, StreamBuffers  # noqa: E402

MAX_ROWS = 256
KERNELS = r"""
extern "C" __global__ void affine(const float *x, float *y, float a, float b, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + b;
}
extern "C" __global__ void spin_affine(const float *x, float *y, float a, float b, long n, long loops) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = x[i];
        for (long k = 0; k < loops; ++k) v = v * 1.0000001f;  // keeps the GPU busy for a while
        y[i] = a * x[i] + b + (v - v);
    }
}
"""


@pytest.fixture(scope="module")
def ctx() -> Iterator[CudaContext]:
    context = CudaContext(0)
    yield context
    context.close()


@pytest.fixture(scope="module")
def kernels(ctx: CudaContext) -> Iterator[Any]:
    from pycuda.compiler import SourceModule

    with ctx.active():
        module = SourceModule(KERNELS, no_extern_c=True)
    yield module


def specs(rows: int = MAX_ROWS, features: int = 64) -> list[BufferSpec]:
    f32 = np.dtype(np.float32)
    return [
        BufferSpec("x", f32, (rows, features), True),
        BufferSpec("ids", np.dtype(np.int64), (rows, 3), True),
        BufferSpec("y", f32, (rows, features), False),
        BufferSpec("ids_out", np.dtype(np.int64), (rows, 3), False),
    ]


def engine(kernels: Any, a: float = 2.0, b: float = 1.0, loops: int = 0) -> Any:
    """Stands where `execute_async_v3(stream)` runs: kernels on the buffers' stream, device to device."""

    def enqueue(buf: StreamBuffers, shapes: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
        x_shape = tuple(shapes["x"])
        n = int(np.prod(x_shape))
        grid = ((n + 255) // 256 or 1, 1)
        if loops:
            kernels.get_function("spin_affine")(
                np.uintp(buf.device_address("x")),
                np.uintp(buf.device_address("y")),
                np.float32(a),
                np.float32(b),
                np.int64(n),
                np.int64(loops),
                block=(256, 1, 1),
                grid=grid,
                stream=buf.stream,
            )
        else:
            kernels.get_function("affine")(
                np.uintp(buf.device_address("x")),
                np.uintp(buf.device_address("y")),
                np.float32(a),
                np.float32(b),
                np.int64(n),
                block=(256, 1, 1),
                grid=grid,
                stream=buf.stream,
            )
        ids_shape = tuple(shapes["ids"])
        nbytes = int(np.prod(ids_shape)) * 8
        if nbytes:
            cuda.memcpy_dtod_async(
                buf.device_address("ids_out"), buf.device_address("ids"), nbytes, buf.stream
            )
        return {"y": x_shape, "ids_out": ids_shape}

    return enqueue


def run(buf: StreamBuffers, kernels: Any, x: np.ndarray, ids: np.ndarray, **kw: Any) -> dict[str, np.ndarray]:
    step = engine(kernels, **kw)
    return buf.run({"x": x, "ids": ids}, lambda b: step(b, {"x": x.shape, "ids": ids.shape}))


def data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 64)).astype(np.float32)
    ids = rng.integers(-(2**40), 2**40, size=(rows, 3), dtype=np.int64)
    return x, ids


# ---------------------------------------------------------------------------------------------- tests
def test_context_describes_the_device(ctx: CudaContext) -> None:
    assert ctx.name
    major, minor = ctx.compute_capability.split(".")
    assert int(major) >= 3 and int(minor) >= 0
    print(f"GPU: {ctx.name}, compute capability {ctx.compute_capability}")


@pytest.mark.parametrize("rows", [1, 7, 64, MAX_ROWS])
def test_round_trip_through_device(ctx: CudaContext, kernels: Any, rows: int) -> None:
    x, ids = data(rows, seed=rows)
    with ctx.active():
        buf = StreamBuffers(specs())
        try:
            out = run(buf, kernels, x, ids)
        finally:
            buf.free()
    assert out["y"].shape == (rows, 64) and out["y"].dtype == np.float32
    np.testing.assert_allclose(out["y"], 2 * x + 1, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out["ids_out"], ids)


def test_buffers_allocated_once_per_profile_and_reused(ctx: CudaContext, kernels: Any) -> None:
    pool = BufferPool()
    with ctx.active():
        try:
            first = pool.get(0, specs)
            addresses = {n: first.device_address(n) for n in first.specs}
            host = {n: first.host_buffer(n).ctypes.data for n in first.specs}
            for i, rows in enumerate([1, 32, 256, 5, 256, 1, 17] * 3):
                buf = pool.get(0, specs)
                assert buf is first
                x, ids = data(rows, seed=i)
                out = run(buf, kernels, x, ids, a=3.0, b=-1.0)
                np.testing.assert_allclose(out["y"], 3 * x - 1, rtol=1e-6, atol=1e-6)
                np.testing.assert_array_equal(out["ids_out"], ids)
                assert {n: buf.device_address(n) for n in buf.specs} == addresses
                assert {n: buf.host_buffer(n).ctypes.data for n in buf.specs} == host
            assert pool.allocations == 1 and len(pool) == 1

            second = pool.get(1, lambda: specs(rows=16))  # another optimization profile
            assert second is not first and pool.allocations == 2
            assert second.device_address("x") != first.device_address("x")
            x, ids = data(16, seed=3)
            np.testing.assert_allclose(run(second, kernels, x, ids)["y"], 2 * x + 1, rtol=1e-6)
        finally:
            pool.free()


def test_host_buffers_are_page_locked(ctx: CudaContext) -> None:
    with ctx.active():
        buf = StreamBuffers(specs())
        try:
            for name in buf.specs:
                host = buf.host_buffer(name)
                base = host.base
                assert base is not None and "HostAllocation" in type(base).__name__, type(base)
                assert host.size == int(np.prod(buf.specs[name].max_shape))
        finally:
            buf.free()


def test_work_is_asynchronous_on_the_stream(ctx: CudaContext, kernels: Any) -> None:
    """Copies and the kernel are queued on the stream and only complete at synchronize()."""
    x, ids = data(MAX_ROWS, seed=5)
    with ctx.active():
        buf = StreamBuffers(specs())
        try:
            buf.put_inputs({"x": x, "ids": ids})
            shapes = engine(kernels, loops=2_000_000)(buf, {"x": x.shape, "ids": ids.shape})
            views = buf.get_outputs(shapes)
            pending = not buf.stream.is_done()
            buf.synchronize()
            assert buf.stream.is_done()
            np.testing.assert_allclose(views["y"], 2 * x + 1, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(views["ids_out"], ids)
        finally:
            buf.free()
    assert pending, "the stream finished before synchronize(): the copies/kernel ran synchronously"


def test_one_stream_per_context_runs_independently(ctx: CudaContext, kernels: Any) -> None:
    with ctx.active():
        a, b = StreamBuffers(specs()), StreamBuffers(specs())
        try:
            assert a.stream_handle != b.stream_handle and a.stream_handle != 0
            xa, ia = data(100, seed=1)
            xb, ib = data(200, seed=2)
            a.put_inputs({"x": xa, "ids": ia})
            b.put_inputs({"x": xb, "ids": ib})
            va = a.get_outputs(
                engine(kernels, a=2.0, b=1.0, loops=50_000)(a, {"x": xa.shape, "ids": ia.shape})
            )
            vb = b.get_outputs(engine(kernels, a=-1.0, b=0.5)(b, {"x": xb.shape, "ids": ib.shape}))
            b.synchronize()
            a.synchronize()
            np.testing.assert_allclose(va["y"], 2 * xa + 1, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(vb["y"], -xb + 0.5, rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(va["ids_out"], ia)
            np.testing.assert_array_equal(vb["ids_out"], ib)
        finally:
            a.free()
            b.free()


def test_returned_outputs_are_copies(ctx: CudaContext, kernels: Any) -> None:
    with ctx.active():
        buf = StreamBuffers(specs())
        try:
            x1, i1 = data(8, seed=11)
            first = run(buf, kernels, x1, i1)
            x2, i2 = data(8, seed=12)
            run(buf, kernels, x2, i2)
        finally:
            buf.free()
    np.testing.assert_allclose(first["y"], 2 * x1 + 1, rtol=1e-6, atol=1e-6)  # not overwritten


def test_calls_from_worker_threads(ctx: CudaContext, kernels: Any) -> None:
    """Serving calls the backend from worker threads: the context is made current per call."""
    pool = BufferPool()
    lock = threading.Lock()

    def call(i: int) -> bool:
        x, ids = data(1 + i % 50, seed=100 + i)
        with lock, ctx.active():
            out = run(pool.get(0, specs), kernels, x, ids)
        return bool(np.allclose(out["y"], 2 * x + 1, atol=1e-6) and np.array_equal(out["ids_out"], ids))

    try:
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            assert all(ex.map(call, range(40)))
        assert pool.allocations == 1
    finally:
        with ctx.active():
            pool.free()


def test_bad_shapes_and_dtypes_name_the_tensor(ctx: CudaContext) -> None:
    with ctx.active():
        buf = StreamBuffers(specs())
        try:
            with pytest.raises(InferenceError, match=r"'x'.*\[257, 64\].*\[256, 64\]"):
                buf.put_inputs({"x": np.zeros((257, 64), np.float32)})
            with pytest.raises(InferenceError, match=r"'x'.*\[2, 65\]"):
                buf.put_inputs({"x": np.zeros((2, 65), np.float32)})
            with pytest.raises(InferenceError, match=r"'x'.*float32.*float64"):
                buf.put_inputs({"x": np.zeros((2, 64), np.float64)})
            with pytest.raises(InferenceError, match=r"'pixels'.*x, ids, y, ids_out"):
                buf.put_inputs({"pixels": np.zeros((2, 64), np.float32)})
            with pytest.raises(InferenceError, match=r"'y' is an engine output"):
                buf.put_inputs({"y": np.zeros((2, 64), np.float32)})
        finally:
            buf.free()


def test_free_returns_device_memory(ctx: CudaContext) -> None:
    big = [BufferSpec("x", np.dtype(np.float32), (1 << 26,), True)]  # 256 MiB device + 256 MiB pinned
    with ctx.active():
        before, _ = cuda.mem_get_info()
        buf = StreamBuffers(big)
        during, _ = cuda.mem_get_info()
        buf.free()
        after, _ = cuda.mem_get_info()
    assert before - during >= (1 << 28)
    assert after >= before - (16 << 20)


def _engine_skip_reason(ctx: CudaContext) -> str | None:
    cc = ctx.compute_capability
    if importlib.util.find_spec("tensorrt") is not None:
        return None
    if importlib.util.find_spec("tensorrt_rtx") is not None and cc in library.RTX_COMPUTE_CAPABILITIES:
        return None
    return (
        f"no TensorRT engine can run on this GPU ({ctx.name}, compute capability {cc}): full TensorRT "
        "(`tensorrt`) is not installed here and TensorRT-RTX refuses compute capability 9.0 "
        "(H100/H200); the buffer/stream path EngineRunner uses is tested above with a CUDA kernel"
    )


def test_engine_runner_runs_a_real_engine(ctx: CudaContext, tmp_path: Any) -> None:
    reason = _engine_skip_reason(ctx)
    if reason:
        pytest.skip(reason)
    pytest.importorskip("onnx", reason="building a test engine needs onnx")
    from onnx import TensorProto, helper
    from trtforge_runtime.trt.runner import EngineRunner

    backend = library.TENSORRT if importlib.util.find_spec("tensorrt") else library.TENSORRT_RTX
    trt = library.load(backend)
    w = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["pixels", "w"], ["logits"])],
        "mm",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [helper.make_tensor("w", TensorProto.FLOAT, [64, 10], w.ravel().tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    builder = trt.Builder(library.logger(backend))
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, library.logger(backend))
    assert parser.parse(model.SerializeToString())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("pixels", (1, 64), (8, 64), (32, 64))
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    assert blob is not None
    path = tmp_path / "mm.engine"
    path.write_bytes(bytes(blob))
    runner = EngineRunner(path, backend)
    runner.load()
    try:
        assert runner.max_batch == 32
        for rows in (1, 5, 32):
            x = np.random.default_rng(rows).normal(size=(rows, 64)).astype(np.float32)
            np.testing.assert_allclose(runner.run({"pixels": x})["logits"], x @ w, rtol=1e-3, atol=1e-3)
        with pytest.raises(InferenceError, match="'pixels'"):
            runner.run({"pixels": np.zeros((33, 64), np.float32)})
    finally:
        runner.close()


def test_engine_runner_refuses_run_before_load(tmp_path: Any) -> None:
    from trtforge_runtime.trt.runner import EngineRunner

    with pytest.raises(BackendError, match="before load"):
        EngineRunner(tmp_path / "none.engine", "tensorrt").run({"pixels": np.zeros((1, 64), np.float32)})
