"""`trtforge convert -f FILE --model DIR -o DIR2`: the conversion pipeline, step by step.

1. resolve and validate the model (train output folder or spec.model.source) and its gate/calibration rows;
2. transform the network per candidate precision and run the accuracy gate (`best`: int8, fp16, fp32);
3. build one engine per compute capability through the backend's builder, via the engine cache;
4. build the onnxruntime fallback artifact (always);
5. write DIR2 atomically: engine files, onnxruntime/, engine.json; report to the operator.
An existing DIR2 converted from the same model and engine spec (same fingerprint) is reused when it holds
every requested compute capability, else extended by the missing ones under a lock (publish.py: the
operator's per-architecture `tensorrt` Jobs all write one folder); any other content is refused.
Nothing in DIR2 or the cache is touched when a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtforge_runtime import remote
from trtforge_runtime.artifacts import (
    read_json,
    sha256_file,
    versions,
    write_termination_message,
)
from trtforge_runtime.convert import engine_json, gate, precision, profiles, publish, source
from trtforge_runtime.convert.builders import builder_for
from trtforge_runtime.convert.builders import onnxruntime as ort_artifact
from trtforge_runtime.convert.builders.base import (
    BuildRequest,
    EngineBuilder,
    VerifySamples,
    check_batch_profile,
)
from trtforge_runtime.convert.cache import CACHE_ENV, CacheEntry, CacheKey, EngineCache
from trtforge_runtime.errors import (
    ArtifactError,
    ConversionError,
    DatasetError,
    TrtforgeError,
    UnsupportedTargetError,
)
from trtforge_runtime.spec.load import load_manifest
from trtforge_runtime.spec.model import Engine
from trtforge_runtime.trt import library

_log = logging.getLogger(__name__)
SYNTHETIC_ROWS = 256


@dataclass(frozen=True)
class ConvertSettings:
    """The command's inputs, from flags and environment (read when the command runs)."""

    file: Path
    model: Path | None
    output: Path
    cache: Path
    compute_capabilities: list[str] | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ConvertSettings:
        output = Path(args.output)
        env_cache = os.environ.get(CACHE_ENV)
        cache = args.cache or (Path(env_cache) if env_cache else output.resolve().parent / ".engine-cache")
        return cls(Path(args.file), args.model, output, Path(cache), args.compute_capability)


@dataclass
class Outcome:
    """What a conversion produced (also what the command prints and reports).

    `document` is the folder's engine.json (with other Jobs' engines when merged); `targets` are the
    compute capabilities this run was asked for, `added` those it put into the folder.
    """

    output: Path
    document: dict[str, Any]
    reused_output: bool
    targets: list[str]
    added: list[str]


def run(args: argparse.Namespace) -> int:
    uri = args.output if remote.is_remote(args.output) else None
    try:
        with contextlib.ExitStack() as stack:  # remote --model / -o: local copies (remote.py)
            if uri is not None or remote.is_remote(args.model):
                args = remote.localize_convert_args(args, stack)
            settings = ConvertSettings.from_args(args)
            outcome = convert(settings)
    except TrtforgeError as exc:
        write_termination_message({"ok": False, "stage": "convert", "error": str(exc)})
        raise
    except BaseException as exc:  # a bug or an interruption: still tell the operator why the Job ended
        write_termination_message({"ok": False, "stage": "convert", "error": f"{type(exc).__name__}: {exc}"})
        raise
    print_summary(outcome)
    if uri is not None:
        print(f"published to {uri} (engine.json uploaded last)")
    write_termination_message(summary(outcome) | ({"uri": uri} if uri else {}))
    return 0


def summary(outcome: Outcome) -> dict[str, Any]:
    """The Job's report: about this run's compute capabilities (the operator sums over per-CC Jobs)."""
    doc = outcome.document
    chosen = [c for c in doc["gate"]["candidates"] if c["precision"] == doc["precision"]]
    mine = [e for e in doc["engines"] if e["computeCapability"] in outcome.targets]
    return {
        "ok": True,
        "stage": "convert",
        "uri": str(outcome.output),
        "digest": doc["model"]["digest"],
        "backend": doc["backend"],
        "version": mine[0]["libraryVersion"] if mine else doc["onnxruntime"]["libraryVersion"],
        "precision": doc["precision"],
        "computeCapabilities": [e["computeCapability"] for e in mine],
        "folderComputeCapabilities": list(doc.get("computeCapabilities", [])),
        "top1Drop": chosen[0]["top1Drop"] if chosen else None,
        "sizeBytes": sum(e["sizeBytes"] for e in mine) or doc["onnxruntime"]["sizeBytes"],
        "buildSeconds": round(
            sum(e["buildSeconds"] for e in mine if e["computeCapability"] in outcome.added), 3
        ),
        "cacheHits": sum(1 for e in mine if e["cacheHit"] or e["computeCapability"] not in outcome.added),
        "reused": outcome.reused_output,
    }


def print_summary(outcome: Outcome) -> None:
    doc = outcome.document
    g = doc["gate"]
    chosen = next(c for c in g["candidates"] if c["precision"] == doc["precision"])
    if outcome.reused_output:
        print(f"{outcome.output} is up to date (same model and engine spec); nothing rebuilt")
    elif len(outcome.added) < len(doc["engines"]):
        print(
            f"added {', '.join(outcome.added) or 'nothing'} to {outcome.output} (same model and engine spec)"
        )
    checks = "; ".join(gate.sentence(c) for c in chosen.get("checks", [])) or "no bounds set"
    print(
        f"converted {doc['name']}: backend {doc['backend']}, precision {doc['precision']} "
        f"(gate on {g['samples']} {g['data']} rows: {checks})"
    )
    for c in g["candidates"]:
        if not c["passed"]:
            print(f"  rejected {c['precision']} ({c.get('rejectedBy', 'gate')}): {c.get('reason')}")
    for e in doc["engines"]:
        hit = e["cacheHit"] or outcome.reused_output
        how = "cache hit" if hit else f"built in {e['buildSeconds']:.2f} s"
        if e["computeCapability"] not in outcome.targets:
            how = "already there"
        print(f"  {e['file']}: {e['sizeBytes']:,} bytes, {how}")
    ort = doc["onnxruntime"]
    print(f"  {ort['file']} (+ {ort['optimizedFile']}): onnxruntime fallback for any node")
    if not outcome.reused_output:
        print(f"wrote {outcome.output / 'engine.json'}")


def select_targets(spec_ccs: list[str], flag_ccs: list[str] | None) -> list[str]:
    """Normalized compute capabilities to build: the spec's, or the --compute-capability subset of them."""
    normalized = [library.format_compute_capability(*library.parse_compute_capability(c)) for c in spec_ccs]
    if not flag_ccs:
        return normalized
    picked = []
    for cc in flag_ccs:
        n = library.format_compute_capability(*library.parse_compute_capability(cc))
        if n not in normalized:
            raise UnsupportedTargetError(
                f"--compute-capability {cc} is not in spec.engine.computeCapabilities "
                f"({', '.join(normalized)})"
            )
        if n not in picked:
            picked.append(n)
    return picked


def engine_spec_json(engine: Engine) -> dict[str, Any]:
    data = engine.model_dump(mode="json", by_alias=True, exclude={"resources"})
    return dict(data)


def check_existing_output(output: Path) -> None:
    """Refuse early, before any work, a non-empty OUTPUT that holds no engine.json (or no folder)."""
    if not output.exists():
        return
    if not output.is_dir():
        raise ArtifactError(f"output {output} exists and is not a folder")
    if any(output.iterdir()) and not (output / publish.ENGINE_JSON).is_file():
        raise ArtifactError(
            f"output folder {output} is not empty and holds no engine.json; refusing to touch it"
        )
    if (output / publish.ENGINE_JSON).is_file():
        read_json(output / publish.ENGINE_JSON, publish.ENGINE_JSON)


def gate_rows(
    src: source.ModelSource, n: int, ranges: profiles.Ranges | None = None
) -> tuple[gate.Feeds, np.ndarray | None, str]:
    """The gate's rows, one array per input: held-out test rows when the model comes with data, else
    seeded synthetic rows (uniform [0, 1) floats, 0/1 integers, random booleans; dynamic dimensions
    after the batch at their profile's opt)."""
    ranges = ranges or profiles.input_ranges(src.inputs, [])
    x = src.samples.x_test
    if x is not None:
        feeds = check_feeds(src, x, f"gate samples ({src.samples.origin})", ranges)
        y = src.samples.y_test
        return gate.slice_feeds(feeds, slice(0, n)), (None if y is None else np.asarray(y)[:n]), "test"
    _log.warning("no held-out data: the accuracy gate runs on synthetic rows (uniform [0, 1) floats)")
    rng = np.random.default_rng(0)
    rows = min(n, SYNTHETIC_ROWS)
    feeds = {t.name: synthetic(rng, t, rows, ranges[t.name][1]) for t in src.inputs}
    return feeds, None, "synthetic"


def synthetic(
    rng: np.random.Generator, t: source.TensorInfo, rows: int, dims: tuple[int, ...] | None = None
) -> np.ndarray:
    """Seeded rows for input `t`: uniform [0, 1) floats, 0/1 integers (valid indices), random booleans."""
    shape = (rows, *(dims if dims is not None else t.shape[1:]))
    if t.datatype in ("FP32", "FP16"):
        return rng.random(shape, dtype=np.float32).astype(np.float16 if t.datatype == "FP16" else np.float32)
    if t.datatype == "BOOL":
        return rng.random(shape) < 0.5
    return rng.integers(0, 2, shape).astype(_NUMPY[t.datatype])


_NUMPY = {"INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32, "INT64": np.int64}


def check_feeds(
    src: source.ModelSource,
    x: np.ndarray | gate.Feeds,
    what: str,
    ranges: profiles.Ranges | None = None,
) -> gate.Feeds:
    """Sample rows as one array per model input, checked against the inputs' names, shapes (within the
    profiles of dynamic dimensions) and types."""
    ranges = ranges or profiles.input_ranges(src.inputs, [])
    if not isinstance(x, dict):
        if len(src.inputs) != 1:
            raise DatasetError(
                f"{what} hold one array, but the model has {len(src.inputs)} inputs "
                f"({', '.join(t.name for t in src.inputs)}): give one array per input (a model folder "
                "whose samples.npz has x_test.<input> and x_calib.<input>, or a dataset .npz with "
                "x.<input>, spec.model.source.dataset)"
            )
        x = {src.input.name: x}
    names = [t.name for t in src.inputs]
    missing, extra = [n for n in names if n not in x], [n for n in x if n not in names]
    if missing or extra:
        raise DatasetError(
            f"{what} do not match the model's inputs {names}: "
            + "; ".join(
                ([f"missing {missing}"] if missing else [])
                + ([f"not inputs of the model {extra}"] if extra else [])
            )
        )
    out = {}
    for t in src.inputs:
        a = np.asarray(x[t.name])
        lo, _, hi = ranges[t.name]
        rest = tuple(a.shape[1:])
        if len(rest) != len(lo) or any(not a_ <= d <= b_ for a_, d, b_ in zip(lo, rest, hi, strict=True)):
            want = ", ".join(str(a_) if a_ == b_ else f"{a_}..{b_}" for a_, b_ in zip(lo, hi, strict=True))
            raise DatasetError(
                f"{what} have shape {list(a.shape)} for input {t.name!r}, but the model input "
                f"{t.name!r} wants [-1, {want}]"
            )
        out[t.name] = _cast(a, t, what)
    if len({len(a) for a in out.values()}) > 1:
        raise DatasetError(
            f"{what}: the inputs have different numbers of rows {[len(a) for a in out.values()]}"
        )
    return out


def _cast(a: np.ndarray, t: source.TensorInfo, what: str) -> np.ndarray:
    """Sample rows in the input's datatype; DatasetError naming the input when a value would change
    (a float row fed to an integer input, a number other than 0/1 to a BOOL input, an integer that
    does not fit): the gate would otherwise pass on rows the model never sees at serving time."""
    dtype = np.dtype(_dtype(t.datatype))
    if a.dtype.kind not in "biuf":
        raise DatasetError(
            f"{what} for input {t.name!r} are {a.dtype}, not numbers; the input is {t.datatype}"
        )
    if dtype.kind not in "biu" or not a.size:
        return np.ascontiguousarray(a.astype(dtype, copy=False))
    flat = a.reshape(-1)
    changed = np.zeros(flat.shape, bool)
    if flat.dtype.kind == "f":  # NaN, inf and floats beyond the integer range have no integer to cast to
        info = np.iinfo(dtype) if dtype.kind != "b" else np.iinfo(np.int8)
        changed = ~np.isfinite(flat) | (flat < info.min) | (flat > info.max)
    if not changed.any():
        out = np.ascontiguousarray(a.astype(dtype, copy=False))
        changed = out.reshape(-1).astype(flat.dtype) != flat
        if not changed.any():
            return out
    value = str(flat[int(np.flatnonzero(changed)[0])])
    kind = "0 or 1" if dtype.kind == "b" else f"integers that fit {t.datatype}"
    raise DatasetError(
        f"{what} for input {t.name!r} hold {value} ({a.dtype}), but the model input {t.name!r} "
        f"is {t.datatype}: give {kind} (a cast would change the rows the gate checks)"
    )


def _dtype(datatype: str) -> Any:
    return {"FP32": np.float32, "FP16": np.float16, "BOOL": np.bool_}.get(datatype) or _NUMPY[datatype]


def convert(settings: ConvertSettings) -> Outcome:
    manifest = load_manifest(settings.file)
    spec = manifest.spec
    engine = spec.engine
    backend = str(engine.backend)
    batch = check_batch_profile(engine.batch)
    builder = builder_for(backend)
    if builder is not None:
        builder.library_version()  # LibraryMissingError naming the package when not installed
    requested = select_targets(engine.compute_capabilities, settings.compute_capabilities)
    explicit = str(engine.precision) if str(engine.precision) != "best" else None
    if builder is not None and explicit is not None:
        for cc in requested:
            builder.check_target(cc, explicit)  # fail fast, before any work
    check_existing_output(settings.output)  # refuse a foreign non-empty folder before any work

    with tempfile.TemporaryDirectory(prefix="trtforge-convert-") as tmp:
        work = Path(tmp)
        src = source.resolve(spec, settings.model, work, base_dir=settings.file.resolve().parent)
        ranges = profiles.input_ranges(src.inputs, engine.inputs)  # before any work
        targets = builder.select_targets(requested) if builder is not None else []
        fp = engine_json.fingerprint(src.digest, engine_spec_json(engine))
        existing = publish.existing_document(settings.output, fp)
        have = {e["computeCapability"] for e in (existing or {}).get("engines", [])}
        if existing is not None:
            if all(t in have for t in targets):
                return Outcome(settings.output.resolve(), existing, True, targets, [])
            # Another Job of this fingerprint made the folder: match its precision, build what it lacks.
            explicit = str(existing["precision"])
        spec_targets = select_targets(engine.compute_capabilities, None) if builder is not None else []
        choice = _choose(
            src,
            engine,
            builder,
            _Targets(spec_targets, [t for t in targets if t not in have]),
            explicit,
            EngineCache(settings.cache),
            batch,
            work,
            str(spec.model.task),
            ranges,
        )
        chosen, chosen_path, the_gate, network_digest = (
            choice.precision,
            choice.path,
            choice.the_gate,
            choice.digest,
        )
        cache, engines, results, data = choice.cache, choice.engines, choice.results, choice.data
        ort_entry = _build_onnxruntime(cache, src, chosen, chosen_path, network_digest)

        outputs = gate.run_all(chosen_path, the_gate.feeds, [t.name for t in src.outputs])
        reference = engine_json.reference_sample(the_gate.feeds, None, outputs, src.output.name, chosen)
        lib_versions = versions(["trtforge", "onnx", "onnxruntime", "onnxconverter-common"])
        if builder is not None:
            lib_versions[library.module_name(builder.backend)] = builder.library_version()
        doc = engine_json.document(
            name=manifest.metadata.name,
            model={
                "digest": src.digest,
                "inputs": [profiles.to_json(t, ranges, batch) for t in src.inputs],
                "outputs": [t.to_json() for t in src.outputs],
                "origin": src.origin,
            },
            backend=backend,
            precision=chosen,
            batch={"min": batch[0], "opt": batch[1], "max": batch[2]},
            engines=[e for e, _ in engines],
            onnxruntime={
                "file": f"onnxruntime/{ort_artifact.MODEL_FILE}",
                "optimizedFile": f"onnxruntime/{ort_artifact.OPTIMIZED_FILE}",
                "precision": chosen,
                "libraryVersion": ort_artifact.library_version(),
                "sizeBytes": (ort_entry.path / ort_artifact.MODEL_FILE).stat().st_size,
                "cacheKey": ort_entry.key,
                "cacheHit": ort_entry.hit,
                "fallback": True,
            },
            gate=the_gate.report(results, chosen, data)
            | ({"calibration": choice.calibration} if choice.calibration else {}),
            reference=reference,
            versions=lib_versions,
            fingerprint=fp,
            compute_capabilities=targets,
        )
        final, added = publish.publish(
            settings.output,
            fp,
            doc,
            [publish.Placement(entry.path / Path(d["file"]).name, d["file"]) for d, entry in engines],
            [
                publish.Placement(ort_entry.path / name, f"onnxruntime/{name}")
                for name in (ort_artifact.MODEL_FILE, ort_artifact.OPTIMIZED_FILE)
            ],
        )
    return Outcome(settings.output.resolve(), final, False, targets, added)


@dataclass(frozen=True)
class _Targets:
    """Compute capabilities: the spec's (which `best` must build for) and those this run publishes."""

    spec: list[str]
    publish: list[str]


@dataclass
class _Choice:
    """The kept precision, its network, the gate and every candidate's result, and the built engines."""

    precision: str
    path: Path
    the_gate: gate.Gate
    digest: str
    cache: EngineCache
    engines: list[tuple[dict[str, Any], CacheEntry]]
    results: list[gate.GateResult]
    data: str
    calibration: dict[str, Any] | None


def _choose(
    src: source.ModelSource,
    engine: Engine,
    builder: EngineBuilder | None,
    targets: _Targets,
    explicit: str | None,
    cache: EngineCache,
    batch: tuple[int, int, int],
    work: Path,
    task: str = "classification",
    ranges: profiles.Ranges | None = None,
) -> _Choice:
    """Try the candidate precisions in order; keep the first that passes the gate and builds everywhere.

    `best` rejects a precision (recording the stage and the reason) that a spec target refuses, that has
    no calibration rows, that fails the gate, or whose engine fails to build for any of the spec's
    compute capabilities this machine builds (TensorRT-RTX: all of them, so the per-architecture Jobs of
    one folder all choose the same precision). An explicit precision raises instead.
    """
    ranges = ranges or profiles.input_ranges(src.inputs, [])
    x, y, data = gate_rows(src, engine.accuracy.samples, ranges)
    the_gate = gate.Gate(
        src.onnx_path,
        None,
        src.output.name,
        x,
        gate.Limits.from_spec(engine.accuracy, task),
        y,
        output_names=[t.name for t in src.outputs],
    )
    options = precision.Int8Options.from_spec(engine.calibration)
    results: list[gate.GateResult] = []
    for p in (explicit,) if explicit else precision.BEST_ORDER:
        result = _candidate(
            src, p, builder, targets.spec if explicit is None else [], options, the_gate, work
        )
        results.append(result)
        if not result.passed:
            if explicit:
                raise _explicit_failure(result, the_gate)
            _log.warning("precision %s rejected (%s): %s", p, result.stage, result.reason)
            continue
        path = work / f"{p}.onnx"
        digest = sha256_file(path)
        build_for = list(targets.publish)
        if builder is not None and explicit is None:
            build_for += [t for t in builder.select_targets(targets.spec) if t not in build_for]
        try:
            built = _build_engines(
                builder, cache, src, p, path, digest, engine, batch, build_for, the_gate, ranges
            )
        except ConversionError as exc:
            if explicit:
                raise
            result.reject("build", f"{first_line(exc)}")
            _log.warning("precision %s rejected (build): %s", p, exc)
            continue
        engines = [(d, entry) for d, entry in built if d["computeCapability"] in targets.publish]
        calibration = None
        if p == precision.INT8:
            calibration = options.report(_calibration(src)) | {"origin": src.samples.origin}
        return _Choice(p, path, the_gate, digest, cache, engines, results, data, calibration)
    raise ConversionError(
        "no precision passed and built: " + "; ".join(f"{r.precision}: {r.reason}" for r in results)
    )


def first_line(exc: BaseException) -> str:
    """The message of `exc` on one line (builder errors put the library's log lines after a colon)."""
    return " ".join(str(exc).split())[:600]


def _candidate(
    src: source.ModelSource,
    p: str,
    builder: EngineBuilder | None,
    spec_targets: list[str],
    options: precision.Int8Options,
    the_gate: gate.Gate,
    work: Path,
) -> gate.GateResult:
    """Transform the network to precision `p` and gate it; a skipped result says why it was not gated."""
    try:
        if builder is not None:
            for cc in spec_targets:
                builder.check_target(cc, p)
    except UnsupportedTargetError as exc:
        return gate.GateResult.skipped(p, "target", str(exc).split(";")[0])
    try:
        path = precision.transform(
            src.onnx_path,
            p,
            work / f"{p}.onnx",
            input_name=None,
            calib=_calibration(src),
            options=options,
        )
    except precision.CalibrationDataMissing as exc:
        return gate.GateResult.skipped(p, "calibration", str(exc).split(";")[0])
    result, _ = the_gate.evaluate(p, path)
    return result


def _explicit_failure(result: gate.GateResult, the_gate: gate.Gate) -> TrtforgeError:
    """The error an explicitly requested precision fails with (the gate's, or the skip's own)."""
    if result.stage == "gate":
        return the_gate.refuse(result)
    if result.stage == "calibration":
        return precision.CalibrationDataMissing(
            f"{result.reason}; the model folder has no samples.npz x_calib (custom training code writes "
            "them with ctx.write_samples(x_calib=...)) and the spec names no dataset "
            "(spec.model.source.dataset); add either, or choose fp16/fp32"
        )
    return UnsupportedTargetError(result.reason or "unsupported target")


def _build_engines(
    builder: EngineBuilder | None,
    cache: EngineCache,
    src: source.ModelSource,
    chosen: str,
    network: Path,
    network_digest: str,
    engine: Engine,
    batch: tuple[int, int, int],
    targets: list[str],
    the_gate: gate.Gate,
    ranges: profiles.Ranges | None = None,
) -> list[tuple[dict[str, Any], CacheEntry]]:
    if builder is None:
        return []
    dims = tuple((n, r) for n, r in (ranges or {}).items() if r[0] != r[2])
    version = builder.library_version()
    verify = VerifySamples(the_gate, chosen)
    out = []
    for cc in targets:
        key = CacheKey(
            src.digest,
            network_digest,
            builder.backend,
            version,
            chosen,
            cc,
            batch,
            engine.workspace_mib,
            dims,
        )
        file_name = builder.engine_file(cc)
        timing = cache.root / "timing" / f"{builder.backend}-{version}-{library.sm_tag(cc)}.cache"
        request = BuildRequest(network, chosen, engine.batch, engine.workspace_mib, cc, timing, dims)

        def fill(tmp: Path, request: BuildRequest = request, file_name: str = file_name) -> dict[str, Any]:
            dest = tmp / file_name
            cc = request.compute_capability
            _log.info("building %s %s engine for compute capability %s", builder.backend, chosen, cc)
            start = time.perf_counter()
            builder.build(request, dest)
            seconds = time.perf_counter() - start
            return {
                "file": file_name,
                "buildSeconds": round(seconds, 3),
                "sizeBytes": dest.stat().st_size,
                "verification": builder.verify(dest, verify),
            }

        entry = cache.get_or_build(key, fill)
        meta = entry.meta
        out.append(
            (
                {
                    "backend": builder.backend,
                    "computeCapability": cc,
                    "file": f"engines/{file_name}",
                    "sizeBytes": int(meta["sizeBytes"]),
                    "buildSeconds": float(meta["buildSeconds"]),
                    "libraryVersion": version,
                    "precision": chosen,
                    "cacheKey": entry.key,
                    "cacheHit": entry.hit,
                }
                | ({"verification": meta["verification"]} if meta.get("verification") else {}),
                entry,
            )
        )
    return out


def _build_onnxruntime(
    cache: EngineCache,
    src: source.ModelSource,
    chosen: str,
    network: Path,
    network_digest: str,
) -> CacheEntry:
    version = ort_artifact.library_version()
    # The onnxruntime artifact depends on neither the batch profile nor the builder workspace.
    key = CacheKey(src.digest, network_digest, "onnxruntime", version, chosen, "any", (0, 0, 0), 0)

    def fill(tmp: Path) -> dict[str, Any]:
        start = time.perf_counter()
        ort_artifact.build(network, tmp)
        return {"buildSeconds": round(time.perf_counter() - start, 3)}

    return cache.get_or_build(key, fill)


def _calibration(src: source.ModelSource) -> gate.Feeds | None:
    """The int8 calibration rows, one array per input (None: no calibration data)."""
    x = src.samples.x_calib
    return None if x is None else check_feeds(src, x, f"calibration rows ({src.samples.origin})")
