"""What every engine builder shares, written once: the interface, the batch profile, and the TensorRT
network/config logic common to full TensorRT and TensorRT-RTX (same Python API, two module names).

A build parses the precision-transformed ONNX into a strongly typed network (precision comes from the
graph; there are no FP16/INT8 builder flags in TensorRT 11 or TensorRT-RTX), reports the parser's errors
with node names and operators, adds one optimization profile from `engine.batch` on the batch dimension of
every input, limits the workspace memory pool, lets the backend set its target, and serializes the engine
straight into the file it is given (the cache hands out a temporary folder, so failures leave nothing).
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from trtforge_runtime.convert.gate import Gate
from trtforge_runtime.errors import ConversionError
from trtforge_runtime.spec.model import BatchProfile
from trtforge_runtime.tensors import TensorInfo
from trtforge_runtime.trt import library

Shape = tuple[int, ...]


@dataclass(frozen=True)
class BuildRequest:
    """One engine to build: a transformed network for one compute capability."""

    onnx_path: Path
    precision: str
    batch: BatchProfile
    workspace_mib: int
    compute_capability: str
    timing_cache: Path | None = None
    # per input: (min, opt, max) sizes of the dimensions after the batch (profiles.input_ranges);
    # inputs not listed have fixed dimensions after the batch
    dims: tuple[tuple[str, tuple[Shape, Shape, Shape]], ...] = ()


@dataclass(frozen=True)
class VerifySamples:
    """What a built engine is checked against: the accuracy gate (its rows, one array per input, and the
    fp32 reference of every output) and the precision the engine was built at."""

    gate: Gate
    precision: str


def check_batch_profile(batch: BatchProfile) -> tuple[int, int, int]:
    """(min, opt, max), refusing an unordered profile (the spec validator may have been bypassed)."""
    lo, opt, hi = int(batch.min), int(batch.opt), int(batch.max)
    if lo < 1:
        raise ConversionError(f"engine.batch.min must be >= 1, got {lo}")
    if lo > opt:
        raise ConversionError(f"engine.batch: min {lo} > opt {opt}; the profile needs min <= opt <= max")
    if opt > hi:
        raise ConversionError(f"engine.batch: opt {opt} > max {hi}; the profile needs min <= opt <= max")
    return lo, opt, hi


def profile_shapes(
    inputs: list[TensorInfo],
    batch: BatchProfile,
    dims: dict[str, tuple[Shape, Shape, Shape]] | None = None,
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """(min, opt, max) shapes per input: the batch profile on dimension 0, the other dimensions from
    `dims` (spec.engine.inputs, checked by profiles.input_ranges) or fixed."""
    lo, opt, hi = check_batch_profile(batch)
    shapes: dict[str, tuple[Shape, Shape, Shape]] = {}
    for t in inputs:
        if not t.shape or t.shape[0] != -1:
            raise ConversionError(
                f"input {t.name!r} (shape {list(t.shape)}) has no dynamic batch dimension for the profile"
            )
        if dims and t.name in dims:
            d_lo, d_opt, d_hi = dims[t.name]
            shapes[t.name] = ((lo, *d_lo), (opt, *d_opt), (hi, *d_hi))
            continue
        rest = tuple(t.shape[1:])
        if any(d < 1 for d in rest):
            raise ConversionError(
                f"input {t.name!r} (shape {list(t.shape)}): only dimension 0 may be dynamic"
            )
        shapes[t.name] = ((lo, *rest), (opt, *rest), (hi, *rest))
    return shapes


def format_parser_errors(errors: list[dict[str, Any]]) -> str:
    """One line per ONNX parser error: node index, name and operator, then the description."""
    lines = []
    for e in errors:
        where = f"node {e.get('node', '?')}"
        if e.get("name"):
            where += f" {e['name']!r}"
        if e.get("operator"):
            where += f" ({e['operator']})"
        desc = str(e.get("desc") or "").strip()
        if len(desc) < 12:  # bare assertion text such as "false": say what failed
            desc = f"the parser's check of this {e.get('operator') or 'node'} failed ({desc or 'no detail'})"
        lines.append(f"{where}: {desc}")
    return "\n".join(lines)


class EngineBuilder(ABC):
    """One engine backend: which targets it builds here, how, and how a built engine is verified."""

    backend: ClassVar[str]

    @abstractmethod
    def library_version(self) -> str: ...

    @abstractmethod
    def check_target(self, compute_capability: str, precision: str) -> None:
        """Raise UnsupportedTargetError when this backend cannot build `precision` for the target."""

    @abstractmethod
    def select_targets(self, requested: list[str]) -> list[str]:
        """The compute capabilities of `requested` this machine builds."""

    @abstractmethod
    def build(self, request: BuildRequest, dest: Path) -> None:
        """Build and write the serialized engine to `dest`."""

    def engine_file(self, compute_capability: str) -> str:
        return f"{self.backend}-{library.sm_tag(compute_capability)}.engine"

    def verify(self, engine: Path, samples: VerifySamples) -> dict[str, Any] | None:
        """Run a built engine on the gate rows; None when this machine cannot run it (no GPU)."""
        return None


class TensorRTFamilyBuilder(EngineBuilder):
    """The shared TensorRT / TensorRT-RTX build: parse, strongly typed network, profile, config."""

    uses_timing_cache: ClassVar[bool] = False

    def trt(self) -> Any:
        return library.load(self.backend)

    def library_version(self) -> str:
        return library.version(self.backend)

    @abstractmethod
    def configure_target(self, trt: Any, config: Any, compute_capability: str) -> None:
        """Point the builder config at the target GPU architecture."""

    def parse(self, trt: Any, network: Any, logger: Any, path: Path) -> None:
        parser = trt.OnnxParser(network, logger)
        ok = parser.parse_from_file(str(path))
        if ok:
            return
        errors = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            errors.append(
                {
                    "node": _call(err, "node"),
                    "name": _call(err, "node_name"),
                    "operator": _call(err, "node_operator"),
                    "desc": _call(err, "desc") or str(err),
                }
            )
        detail = format_parser_errors(errors) or "\n".join(logger.take_errors()) or "no detail"
        raise ConversionError(f"the {self.backend} ONNX parser cannot parse {path.name}:\n{detail}")

    def network_inputs(self, network: Any) -> list[TensorInfo]:
        out = []
        for i in range(network.num_inputs):
            t = network.get_input(i)
            out.append(TensorInfo(t.name, tuple(int(d) for d in t.shape), str(t.dtype)))
        return out

    def build(self, request: BuildRequest, dest: Path) -> None:
        trt = self.trt()
        logger = library.logger(self.backend)
        logger.take_errors()
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        self.parse(trt, network, logger, request.onnx_path)

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mib << 20)
        profile = builder.create_optimization_profile()
        ranges = dict(request.dims)
        for name, (lo, opt, hi) in profile_shapes(
            self.network_inputs(network), request.batch, ranges
        ).items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
        self.configure_target(trt, config, request.compute_capability)
        if self.uses_timing_cache:
            self._load_timing_cache(config, request.timing_cache)

        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            detail = "\n".join(logger.take_errors()) or "no detail from the library"
            raise ConversionError(
                f"{self.backend} {self.library_version()} could not build a {request.precision} engine for "
                f"compute capability {request.compute_capability}:\n{detail}"
            )
        with dest.open("wb") as fh:
            fh.write(memoryview(serialized))
            fh.flush()
            os.fsync(fh.fileno())
        if self.uses_timing_cache:
            self._save_timing_cache(config, request.timing_cache)

    def _load_timing_cache(self, config: Any, path: Path | None) -> None:
        data = path.read_bytes() if path is not None and path.is_file() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, False)

    def _save_timing_cache(self, config: Any, path: Path | None) -> None:
        if path is None:
            return
        cache = config.get_timing_cache()
        if cache is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(memoryview(cache.serialize()))
        os.replace(tmp, path)


def _call(obj: Any, name: str) -> Any:
    fn = getattr(obj, name, None)
    try:
        return fn() if callable(fn) else None
    except Exception:  # older parser versions lack some accessors or raise on unset fields
        return None


def timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start
