"""Precision transforms of the ONNX graph: the network the engine builders consume decides the precision.

TensorRT 11 has no FP16/INT8 builder flags or calibrators and TensorRT-RTX never had them: a strongly
typed network runs in the types its graph says. So `fp16` converts the graph's float tensors to half
(onnxconverter-common) while keeping FP32 inputs and outputs, and `int8` inserts explicit, symmetric
QuantizeLinear/DequantizeLinear pairs calibrated on representative rows (onnxruntime's quantize_static).
The same transformed file runs in onnxruntime on any CPU, which is what makes the accuracy gate portable.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trtforge_runtime.errors import ConversionError

FP32, FP16, INT8 = "fp32", "fp16", "int8"
PRECISIONS = (FP32, FP16, INT8)
BEST_ORDER = (INT8, FP16, FP32)
CALIBRATION_BATCH = 64


class CalibrationDataMissing(ConversionError):
    """int8 was asked for but there are no rows to calibrate the quantization scales on."""


def transform(source: Path, precision: str, out: Path, *, input_name: str, calib: np.ndarray | None) -> Path:
    """Write the `precision` version of the fp32 ONNX model `source` to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if precision == FP32:
        shutil.copyfile(source, out)
    elif precision == FP16:
        to_fp16(source, out)
    elif precision == INT8:
        to_int8(source, out, input_name=input_name, calib=calib)
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
            half = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    except Exception as exc:  # the converter raises bare Exceptions on unsupported graphs
        raise ConversionError(f"cannot convert {source} to fp16: {exc}") from exc
    onnx.save(half, str(out))


class _Rows:
    """onnxruntime CalibrationDataReader over the calibration rows, in fixed-size batches."""

    def __init__(self, input_name: str, x: np.ndarray) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: x[i : i + CALIBRATION_BATCH]} for i in range(0, len(x), CALIBRATION_BATCH)
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


def to_int8(source: Path, out: Path, *, input_name: str, calib: np.ndarray | None) -> None:
    if calib is None or len(calib) == 0:
        raise CalibrationDataMissing(
            "precision int8 needs calibration data: the model folder has no samples.npz x_calib and the spec "
            "names no dataset (spec.model.source.dataset); add one, or choose fp16/fp32"
        )
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(_Rows, CalibrationDataReader):
        pass

    try:
        with _quiet_root_warnings():
            quantize_static(
                str(source),
                str(out),
                Reader(input_name, np.ascontiguousarray(calib, dtype=np.float32)),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=False,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
            )
    except Exception as exc:  # onnxruntime raises assorted types for graphs it cannot quantize
        raise ConversionError(f"cannot quantize {source} to int8 (QDQ): {exc}") from exc
