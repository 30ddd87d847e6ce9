"""Precision transforms of the ONNX graph: the network the engine builders consume decides the precision.

TensorRT 11 has no FP16/INT8 builder flags or calibrators and TensorRT-RTX never had them: a strongly
typed network runs in the types its graph says. So `fp16` converts the graph's float tensors to half
(onnxconverter-common) while keeping FP32 inputs and outputs, and `int8` inserts explicit, symmetric
QuantizeLinear/DequantizeLinear pairs calibrated on representative rows (onnxruntime's quantize_static).
The same transformed file runs in onnxruntime on any CPU, which is what makes the accuracy gate portable.

The int8 placement follows TensorRT's explicit-quantization guidance (and onnxruntime's options for it):
Q/DQ only on the inputs of the compute operators (MatMul, Conv, Gemm, ConvTranspose); weights int8,
symmetric, one scale per output channel; activations int8, symmetric (zero point 0), one scale per tensor;
the operators' outputs, biases (Add after MatMul, Conv's bias input), normalization constants (the 0-d
scale/offset of the `normalize` layer, which TensorRT refuses as quantized constants) and the final
softmax/probabilities stay float, so the builder fuses bias and activation in float/int32 and served
probabilities are not rounded to steps of 1/127.

A model with several inputs calibrates on one array per input (a dict by input name, the same rows of
each); integer and boolean inputs pass through calibration in their own types.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime.convert.gate import Feeds, as_feeds, feed_rows, slice_feeds
from trtforge_runtime.errors import ConversionError

FP32, FP16, INT8 = "fp32", "fp16", "int8"
PRECISIONS = (FP32, FP16, INT8)
BEST_ORDER = (INT8, FP16, FP32)
CALIBRATION_BATCH = 64
# TensorRT's explicit quantization: Q/DQ on the inputs of these operators only.
QUANTIZED_OPS = ("MatMul", "Conv", "Gemm", "ConvTranspose")
MINMAX, ENTROPY, PERCENTILE = "minmax", "entropy", "percentile"


@dataclass(frozen=True)
class Int8Options:
    """spec.engine.calibration: the calibrator, how many calibration rows, the percentile kept."""

    method: str = MINMAX
    rows: int = 1024
    percentile: float = 99.99

    @classmethod
    def from_spec(cls, calibration: Any) -> Int8Options:
        return cls(str(calibration.method), int(calibration.rows), float(calibration.percentile))

    def report(self, calib: np.ndarray | Feeds | None) -> dict[str, Any]:
        """What engine.json says about the calibration (rows actually used, see calibration_rows)."""
        used = 0 if calib is None else feed_rows(calibration_feeds(as_feeds("x", calib), self.rows))
        out: dict[str, Any] = {"method": self.method, "rows": used, "batch": calibration_batch(used)}
        if self.method == PERCENTILE:
            out["percentile"] = self.percentile
        return out


class CalibrationDataMissing(ConversionError):
    """int8 was asked for but there are no rows to calibrate the quantization scales on."""


def transform(
    source: Path,
    precision: str,
    out: Path,
    *,
    input_name: str | None,
    calib: np.ndarray | Feeds | None,
    options: Int8Options | None = None,
) -> Path:
    """Write the `precision` version of the fp32 ONNX model `source` to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if precision == FP32:
        shutil.copyfile(source, out)
    elif precision == FP16:
        to_fp16(source, out)
    elif precision == INT8:
        to_int8(source, out, input_name=input_name, calib=calib, options=options or Int8Options())
    else:
        raise ConversionError(f"unknown precision {precision!r} (expected one of {', '.join(PRECISIONS)})")
    return out


def to_fp16(source: Path, out: Path) -> None:
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(source))
    try:
        with warnings.catch_warnings():  # one warning per tiny weight clamped to fp16's range
            warnings.simplefilter("ignore", UserWarning)
            half = float16.convert_float_to_float16(
                model,
                keep_io_types=True,
                disable_shape_infer=False,
                check_fp16_ready=False,  # an FP16 model input is not a graph converted already
            )
        _retype_casts(half)
    except Exception as exc:  # the converter raises bare Exceptions on unsupported graphs
        raise ConversionError(f"cannot convert {source} to fp16: {exc}") from exc
    onnx.save(half, str(out))


def _retype_casts(model: Any) -> None:
    """The converter retypes a Cast's float output to half but keeps its `to` (float): a Cast of an
    integer, boolean or FP16 input to float would then contradict its declared type; make it cast to half."""
    from onnx import TensorProto

    half = {v.name for v in model.graph.value_info if v.type.tensor_type.elem_type == TensorProto.FLOAT16}
    for node in model.graph.node:
        if node.op_type != "Cast" or node.output[0] not in half:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16


def calibration_batch(rows: int) -> int:
    """The size of equal batches of at most CALIBRATION_BATCH rows that leave the fewest rows over."""
    batches = max(1, -(-rows // CALIBRATION_BATCH))
    return max(1, rows // batches)


def calibration_rows(calib: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` rows, cut to a whole number of equal calibration batches (fewer rows over than
    batches: 96 rows are 2 batches of 48, 1000 are 16 of 62).

    onnxruntime's histogram calibrators (entropy, percentile) stack the outputs of every batch and fail
    on a shorter last batch, so every method gets equal batches (the same rows for each method).
    """
    rows = calib[: max(1, limit)]
    batch = calibration_batch(len(rows))
    return rows[: len(rows) - len(rows) % batch]


def calibration_feeds(feeds: Feeds, limit: int) -> Feeds:
    """`calibration_rows` of every input (the same rows); float64 rows as float32, FP16 rows stay half."""
    out = {}
    for name, a in feeds.items():
        a = np.asarray(a)
        a = a.astype(np.float32) if a.dtype == np.float64 else a
        out[name] = np.ascontiguousarray(calibration_rows(a, limit))
    return out


class _Rows:
    """onnxruntime CalibrationDataReader over the calibration rows, in equal batches."""

    def __init__(self, feeds: Feeds) -> None:
        rows = feed_rows(feeds)
        batch = calibration_batch(rows)
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            slice_feeds(feeds, slice(i, i + batch)) for i in range(0, rows, batch)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


@contextlib.contextmanager
def _quiet_root_warnings() -> Iterator[None]:
    """quantize_static logs a pre-processing hint on the root logger at WARNING for every call."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_arguments(options: Int8Options) -> dict[str, Any]:
    """quantize_static's keyword arguments for TensorRT-style int8 (see the module docstring)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    methods = {
        MINMAX: CalibrationMethod.MinMax,
        ENTROPY: CalibrationMethod.Entropy,
        PERCENTILE: CalibrationMethod.Percentile,
    }
    if options.method not in methods:
        raise ConversionError(
            f"spec.engine.calibration.method {options.method!r} is not one of {', '.join(methods)}"
        )
    extra: dict[str, Any] = {
        "ActivationSymmetric": True,  # zero point 0: TensorRT supports symmetric int8 only
        "WeightSymmetric": True,
        "QuantizeBias": False,  # biases stay float: the builder folds them (int32 DQ is not TensorRT's)
        "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),  # no requantize before bias/softmax
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},  # MatMul B is [K, N]: N output channels
    }
    if options.method == PERCENTILE:
        extra["CalibPercentile"] = options.percentile
    return {
        "quant_format": QuantFormat.QDQ,
        "activation_type": QuantType.QInt8,
        "weight_type": QuantType.QInt8,
        "per_channel": True,
        "op_types_to_quantize": list(QUANTIZED_OPS),
        "calibrate_method": methods[options.method],
        "extra_options": extra,
    }


ENTROPY_BINS = 2048  # TensorRT's entropy calibration: a 2048-bin histogram mapped onto 128 int8 levels
ENTROPY_QUANTIZED_BINS = 128


def _reader(feeds: Feeds) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(_Rows, CalibrationDataReader):
        pass

    return Reader(feeds)


def entropy_ranges(source: Path, feeds: Feeds, work: Path) -> dict[str, tuple[float, float]]:
    """Per activation tensor the KL-optimal symmetric range (2048-bin histogram, 128 quantized bins).

    quantize_static's own Entropy method keeps onnxruntime's 128/128 bins, with which the threshold
    search only ever returns the full range (minmax); the calibrator itself takes the bin counts.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    calibrator = create_calibrator(
        source,
        list(QUANTIZED_OPS),
        augmented_model_path=str(work / "augmented.onnx"),
        calibrate_method=CalibrationMethod.Entropy,
        extra_options={
            "num_bins": ENTROPY_BINS,
            "num_quantized_bins": ENTROPY_QUANTIZED_BINS,
            "symmetric": True,
        },
    )
    calibrator.collect_data(_reader(feeds))
    data = calibrator.compute_data().data
    out = {}
    for name, value in data.items():
        lo, hi = (float(np.asarray(v).reshape(-1)[0]) for v in value.range_value)
        out[name] = (lo, hi)
    return out


def to_int8(
    source: Path,
    out: Path,
    *,
    input_name: str | None,
    calib: np.ndarray | Feeds | None,
    options: Int8Options,
) -> None:
    if (
        calib is None
        or (not isinstance(calib, dict) and len(calib) == 0)
        or (isinstance(calib, dict) and feed_rows(calib) == 0)
    ):
        raise CalibrationDataMissing(
            "precision int8 needs calibration data: the model folder has no samples.npz x_calib and the spec "
            "names no dataset (spec.model.source.dataset); add one, or choose fp16/fp32"
        )
    from onnxruntime.quantization import CalibrationMethod, quantize_static

    rows = calibration_feeds(as_feeds(input_name, calib), options.rows)
    arguments = quantize_arguments(options)
    try:
        with (
            _quiet_root_warnings(),
            contextlib.redirect_stdout(io.StringIO()),  # the histogram calibrators print progress
            tempfile.TemporaryDirectory(prefix="trtforge-calibrate-") as tmp,
        ):
            if options.method == ENTROPY:
                ranges = entropy_ranges(source, rows, Path(tmp))
                overrides = {
                    n: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for n, (lo, hi) in ranges.items()
                }
                arguments["extra_options"]["TensorQuantOverrides"] = overrides
                arguments["calibrate_method"] = CalibrationMethod.MinMax  # ranges given: a cheap pass
            quantize_static(str(source), str(out), _reader(rows), **arguments)
    except Exception as exc:  # onnxruntime raises assorted types for graphs it cannot quantize
        raise ConversionError(f"cannot quantize {source} to int8 (QDQ): {exc}") from exc
