# ruff: noqa: RUF001  (ratios use the multiplication sign)
"""Serving benchmark: `trtforge serve` against the servers users would pick instead, side by side, one run.

Servers (each but trtforge installed by this script in its own virtual environment under WORKDIR/venvs):
trtforge serve (onnxruntime backend, from the project's environment), MLServer 1.7 with and without its
adaptive batching (a custom onnxruntime runtime: MLServer has none; uvloop 0.21 as it needs to load
models), KServe's Python ModelServer 0.21, and a plain FastAPI + uvicorn + onnxruntime app answering the
same V2 JSON. All serve one digits-shaped ONNX MLP (64 -> 128 relu -> 10 softmax), with onnxruntime on
one intra-op thread, and no per-request access logging.

Method: the server is pinned to one core (`taskset -c SERVER_CPU`) and `wrk` (Debian package `wrk`, a C
load generator: a Python one saturates near 3k req/s here) to another, with benchmarks/wrk/v2_post.lua
posting a fixed body. Closed loop, concurrency 1/16/64 connections, 1 and 32 rows per request as V2 JSON,
and 256 rows as JSON vs the binary tensor extension (servers that support it); a warm-up run, then a fixed
duration. Reported: req/s, rows/s, p50/p90/p99 latency, errors (socket errors, non-2xx, and responses
whose shape or values are wrong: wrk saves samples of every cell and each is checked against onnxruntime's
output; a wrong sample counts its cell as failed), and server RSS (process tree) idle and after the load.

    python benchmarks/serving_bench.py                 # everything (about 10 minutes)
    python benchmarks/serving_bench.py --servers trtforge,fastapi --duration 5
    python benchmarks/serving_bench.py --setup-only    # create the virtual environments

Only same-run ratios mean anything: absolute numbers depend on the machine and whatever else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
APPS = HERE / "apps"
LUA = HERE / "wrk" / "v2_post.lua"
INPUT, OUTPUT, NAME = "pixels", "probabilities", "digits"

# Each baseline's virtual environment: pinned top-level requirements (pip resolves the rest).
VENVS: dict[str, list[str]] = {
    "mlserver": ["mlserver==1.7.1", "uvloop==0.21.0", "onnxruntime==1.32.0", "numpy==2.4.6"],
    "kserve": ["kserve==0.21.0", "onnxruntime==1.32.0", "numpy==2.4.6"],
    "fastapi": ["fastapi==0.165.0", "uvicorn[standard]==0.54.0", "onnxruntime==1.32.0", "numpy==2.4.6"],
    # Triton's Python backend stub needs numpy < 2 (docs/benchmarks.md)
    "triton": ["nvidia-pytriton==0.7.0", "numpy==1.26.4", "onnxruntime==1.20.1"],
}
ALL_SERVERS = (
    "trtforge",
    "trtforge-uvicorn",
    "trtforge-before",
    "triton",
    "mlserver-batching",
    "mlserver",
    "kserve",
    "fastapi",
)
BINARY_SERVERS = {
    "trtforge",
    "trtforge-uvicorn",
    "triton",
    "kserve",
}  # servers that speak the binary tensor data extension


# ------------------------------------------------------------------------------------------ model
def build_model(path: Path, seed: int = 0) -> None:
    """The digits MLP (64 -> 128 relu -> 10 softmax), dynamic batch, opset 17."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.normal(0, 0.1, (64, 128)).astype(np.float32),
        "b1": rng.normal(0, 0.1, 128).astype(np.float32),
        "w2": rng.normal(0, 0.1, (128, 10)).astype(np.float32),
        "b2": rng.normal(0, 0.1, 10).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", [INPUT, "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["l0"]),
        helper.make_node("Add", ["l0", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 10])],
        initializer=[numpy_helper.from_array(a, n) for n, a in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def run_onnx(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return out


def make_engine_dir(root: Path, model: Path) -> Path:
    """A `trtforge convert`-shaped folder (docs/artifacts.md) holding only the onnxruntime network."""
    ort_dir = root / "onnxruntime"
    ort_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, ort_dir / "model.onnx")
    x = np.random.default_rng(1).integers(0, 17, (4, 64)).astype(np.float32)
    y = run_onnx(model, x)
    doc = {
        "format": "trtforge.engine/v1",
        "name": NAME,
        "model": {
            "digest": "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest(),
            "inputs": [{"name": INPUT, "shape": [-1, 64], "datatype": "FP32"}],
            "outputs": [{"name": OUTPUT, "shape": [-1, 10], "datatype": "FP32"}],
        },
        "backend": "onnxruntime",
        "precision": "fp32",
        "batch": {"min": 1, "opt": 32, "max": 256},
        "engines": [],
        "onnxruntime": {"file": "onnxruntime/model.onnx", "precision": "fp32", "libraryVersion": "1.32.0"},
        "referenceSample": {
            "inputs": {INPUT: {"shape": [4, 64], "datatype": "FP32", "data": x.ravel().tolist()}},
            "outputs": {OUTPUT: {"shape": [4, 10], "datatype": "FP32", "data": y.ravel().tolist()}},
            "atol": 1e-4,
            "top1": y.argmax(axis=1).tolist(),
        },
        "createdAt": "2026-01-01T00:00:00Z",
        "versions": {},
    }
    (root / "engine.json").write_text(json.dumps(doc))
    return root


# ------------------------------------------------------------------------------------ environments
def ensure_venv(workdir: Path, name: str) -> Path:
    """WORKDIR/venvs/NAME with VENVS[NAME] installed (skipped when already installed with the same pins)."""
    venv = workdir / "venvs" / name
    marker = venv / ".bench-requirements"
    wanted = "\n".join(VENVS[name])
    if marker.exists() and marker.read_text() == wanted:
        return venv
    print(f"[setup] creating {venv} with {' '.join(VENVS[name])}", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *VENVS[name]],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        raise SystemExit(f"pip install into {venv} failed:\n{pip.stdout[-3000:]}{pip.stderr[-3000:]}")
    marker.write_text(wanted)
    return venv


# ------------------------------------------------------------------------------------------ servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    binary: bool


def trtforge_serve_argv(engine: Path, port: int) -> list[str]:
    """`trtforge serve` of the checkout on PYTHONPATH with the settings every trtforge variant shares."""
    return [
        sys.executable,
        "-m",
        "trtforge_runtime.cli",
        "serve",
        "--engine",
        str(engine),
        "--name",
        NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        "0",
        "--backend",
        "onnxruntime",
    ]


def server_spec(name: str, workdir: Path, model: Path, engine: Path, workers: int = 1) -> ServerSpec:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    runtime_path = os.pathsep.join([str(REPO / "runtime"), env.get("PYTHONPATH", "")])
    if name == "trtforge":  # the CLI module, so that an uninstalled checkout runs it too
        argv = trtforge_serve_argv(engine, port)
        argv += ["--workers", str(workers)]
        return ServerSpec(name, argv, {**env, "PYTHONPATH": runtime_path}, REPO, port, True)
    if name == "trtforge-before":  # another checkout's runtime (e.g. before a change): TRTFORGE_BENCH_BEFORE
        before = os.environ.get("TRTFORGE_BENCH_BEFORE")
        if not before:
            raise SystemExit("trtforge-before needs TRTFORGE_BENCH_BEFORE=<folder holding trtforge_runtime>")
        argv = trtforge_serve_argv(engine, port)
        path = os.pathsep.join([before, env.get("PYTHONPATH", "")])
        return ServerSpec(name, argv, {**env, "PYTHONPATH": path}, REPO, port, True)
    if name == "trtforge-uvicorn":
        argv = [sys.executable, str(APPS / "trtforge_asgi.py"), "--engine", str(engine), "--name", NAME]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        return ServerSpec(name, argv, {**env, "PYTHONPATH": runtime_path}, REPO, port, True)
    if name == "triton":
        venv = ensure_venv(workdir, "triton")
        lib = Path(getattr(sys, "base_prefix", sys.prefix)) / "lib"  # the stub must find this libpython
        env["LD_LIBRARY_PATH"] = os.pathsep.join([str(lib), env.get("LD_LIBRARY_PATH", "")])
        env["PYTHONPATH"] = str(APPS)
        argv = [str(venv / "bin" / "python"), str(APPS / "triton_app.py"), "--model", str(model)]
        argv += ["--name", NAME, "--http-port", str(port), "--grpc-port", str(free_port())]
        argv += ["--metrics-port", str(free_port())]
        return ServerSpec(name, argv, env, APPS, port, True)
    if name.startswith("mlserver"):
        venv = ensure_venv(workdir, "mlserver")
        folder = workdir / "run" / name
        model_dir = folder / NAME
        model_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "debug": False,
            "load_models_at_startup": True,
        }
        (folder / "settings.json").write_text(json.dumps(settings))
        model_settings: dict[str, Any] = {
            "name": NAME,
            "implementation": "mlserver_model.DigitsModel",
            "parameters": {"uri": str(model)},
        }
        if name == "mlserver-batching":  # the same limits as trtforge's defaults: 64 requests / 2 ms
            model_settings.update(max_batch_size=64, max_batch_time=0.002)
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings))
        env["PYTHONPATH"] = str(APPS)
        return ServerSpec(
            name, [str(venv / "bin" / "mlserver"), "start", str(folder)], env, folder, port, False
        )
    if name == "kserve":
        venv = ensure_venv(workdir, "kserve")
        argv = [str(venv / "bin" / "python"), str(APPS / "kserve_app.py"), "--model_name", NAME]
        argv += ["--model_path", str(model), "--http_port", str(port), "--grpc_port", str(free_port())]
        argv += ["--enable_grpc", "false", "--enable_latency_logging", "false", "--workers", "1"]
        return ServerSpec(name, argv, env, APPS, port, True)
    if name == "fastapi":
        venv = ensure_venv(workdir, "fastapi")
        env.update(DIGITS_ONNX=str(model), DIGITS_NAME=NAME, PYTHONPATH=str(APPS))
        argv = [str(venv / "bin" / "uvicorn"), "fastapi_app:app", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]
        return ServerSpec(name, argv, env, APPS, port, False)
    raise SystemExit(f"unknown server {name!r} (choose from {', '.join(ALL_SERVERS)})")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, MB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


@contextlib.contextmanager
def running(spec: ServerSpec, cpu: int | str, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = log_path.open("wb")
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), *spec.argv],
        cwd=spec.cwd,
        env=spec.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        url = f"http://127.0.0.1:{spec.port}/v2/models/{NAME}/ready"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{spec.name} exited with {proc.returncode}; see {log_path}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as r,
            ):
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.name} not ready after 180 s; see {log_path}")
            time.sleep(0.3)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


# ------------------------------------------------------------------------------------------ bodies
@dataclass
class Body:
    rows: int
    encoding: str  # json | binary
    data: bytes
    content_type: str
    header_length: int | None
    x: np.ndarray


def make_body(rows: int, encoding: str) -> Body:
    x = np.random.default_rng(rows).integers(0, 17, (rows, 64)).astype(np.float32)  # digits pixels: 0..16
    if encoding == "json":
        doc = {
            "inputs": [{"name": INPUT, "shape": [rows, 64], "datatype": "FP32", "data": x.ravel().tolist()}]
        }
        return Body(rows, encoding, json.dumps(doc).encode(), "application/json", None, x)
    raw = x.tobytes()
    header = {
        "inputs": [
            {
                "name": INPUT,
                "shape": [rows, 64],
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": OUTPUT, "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    return Body(rows, encoding, head + raw, "application/octet-stream", len(head), x)


def check_response(raw: bytes, body: Body, expected: np.ndarray) -> str | None:
    """None when a saved wrk sample (status, headers, body) holds the right output; else what is wrong."""
    head, _, payload = raw.partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    if lines[0] != "200":
        return f"status {lines[0]}"
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    try:
        hlen = headers.get("inference-header-content-length")
        doc = json.loads(payload[: int(hlen)] if hlen else payload)
        (out,) = [o for o in doc["outputs"] if o["name"] == OUTPUT]
        if list(out["shape"]) != [body.rows, 10]:
            return f"shape {out['shape']}"
        if hlen:
            size = int(out["parameters"]["binary_data_size"])
            got = np.frombuffer(payload[int(hlen) : int(hlen) + size], dtype=np.float32)
        else:
            got = np.asarray(out["data"], dtype=np.float32).ravel()
        if got.size != expected.size or not np.allclose(got, expected.ravel(), atol=1e-4):
            return "wrong values"
    except (ValueError, KeyError, TypeError) as exc:
        return f"unparsable response: {exc}"
    return None


# --------------------------------------------------------------------------------------------- load
@dataclass
class Cell:
    server: str
    concurrency: int
    rows: int
    encoding: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    requests: int = 0
    checked: int = 0
    wrong: list[str] = field(default_factory=list)
    rps_runs: list[float] = field(default_factory=list)
    p99_runs: list[float] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.rows


def wrk(
    url: str,
    body_file: Path,
    body: Body,
    conns: int,
    seconds: float,
    cpu: int | str,
    samples: Path,
    threads: int = 1,
) -> dict[str, Any]:
    argv = [
        "taskset",
        "-c",
        str(cpu),
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
    ]
    argv += ["-s", str(LUA), url, "--", str(body_file), body.content_type]
    argv += [str(body.header_length) if body.header_length is not None else "-", str(samples)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")


def measure(
    server: str,
    port: int,
    body: Body,
    expected: np.ndarray,
    conns: int,
    args: argparse.Namespace,
    tmp: Path,
    load_cpu: int | str | None = None,
    threads: int = 1,
) -> Cell:
    url = f"http://127.0.0.1:{port}/v2/models/{NAME}/infer"
    body_file = tmp / f"body-{body.rows}-{body.encoding}"
    body_file.write_bytes(body.data)
    samples = Path(tempfile.mkdtemp(dir=tmp))
    cpu = args.load_cpu if load_cpu is None else load_cpu
    wrk(url, body_file, body, conns, args.warmup, cpu, samples, threads)
    shutil.rmtree(samples)
    samples.mkdir()
    r = wrk(url, body_file, body, conns, args.duration, cpu, samples, threads)
    cell = Cell(server, conns, body.rows, body.encoding)
    cell.requests = r["requests"]
    cell.rps = r["requests"] / (r["duration_us"] / 1e6)
    cell.p50_ms, cell.p90_ms, cell.p99_ms = (r[k] / 1000 for k in ("p50_us", "p90_us", "p99_us"))
    cell.errors = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
    for sample in sorted(samples.iterdir()):
        cell.checked += 1
        problem = check_response(sample.read_bytes(), body, expected)
        if problem:
            cell.wrong.append(problem)
    if cell.wrong:  # a wrong answer is an error: count the whole share of the cell's requests
        cell.errors += round(cell.requests * len(cell.wrong) / cell.checked)
    shutil.rmtree(samples)
    return cell


# ------------------------------------------------------------------------------------------- report
def table(cells: list[Cell], rss: dict[str, tuple[float, float]]) -> str:
    head = (
        f"{'server':<18} {'conc':>4} {'rows':>4} {'enc':<6} {'req/s':>9} {'rows/s':>10} "
        f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7}"
    )
    lines = [head, "-" * len(head)]
    for c in cells:
        flag = f" ({len(c.wrong)}/{c.checked} samples wrong: {c.wrong[0]})" if c.wrong else ""
        lines.append(
            f"{c.server:<18} {c.concurrency:>4} {c.rows:>4} {c.encoding:<6} {c.rps:>9.0f} "
            f"{c.rows_per_s:>10.0f} {c.p50_ms:>8.2f} {c.p90_ms:>8.2f} {c.p99_ms:>8.2f} {c.errors:>7}{flag}"
        )
    lines += ["", f"{'server':<18} {'idle RSS MB':>12} {'RSS after load MB':>18}"]
    for name, (idle, loaded) in rss.items():
        lines.append(f"{name:<18} {idle:>12.1f} {loaded:>18.1f}")
    return "\n".join(lines)


def targets(cells: list[Cell], rss: dict[str, tuple[float, float]]) -> list[str]:
    """The issue's targets, checked on this run's numbers."""

    def get(server: str, conc: int, rows: int, enc: str = "json") -> Cell | None:
        return next(
            (c for c in cells if (c.server, c.concurrency, c.rows, c.encoding) == (server, conc, rows, enc)),
            None,
        )

    out: list[str] = []

    def ratio(what: str, mine: float, theirs: float, goal: float) -> None:
        r = mine / theirs if theirs else float("inf")
        out.append(f"{'PASS' if r >= goal else 'MISS'} {what}: {r:.2f}x (target >= {goal}x)")

    t = get("trtforge", 64, 1)
    if t:
        for other, goal in (("mlserver-batching", 2.0), ("fastapi", 1.2)):
            o = get(other, 64, 1)
            if o:
                ratio(f"req/s at c=64, 1 row vs {other}", t.rps, o.rps, goal)
        others = [c for s in ALL_SERVERS if s != "trtforge" and (c := get(s, 64, 1))]
        if others:
            worst = min(others, key=lambda c: c.p99_ms)
            ok = all(t.p99_ms <= c.p99_ms for c in others)
            out.append(
                f"{'PASS' if ok else 'MISS'} p99 at c=64, 1 row: {t.p99_ms:.2f} ms vs best other "
                f"{worst.server} {worst.p99_ms:.2f} ms (target: no worse than any)"
            )
    for conc in (16, 64):
        t32, f32 = get("trtforge", conc, 32), get("fastapi", conc, 32)
        if t32 and f32:
            ratio(f"rows/s at c={conc}, 32 rows vs fastapi", t32.rows_per_s, f32.rows_per_s, 1.3)
    tb, tj = next((c for c in cells if c.server == "trtforge" and c.encoding == "binary"), None), None
    if tb:
        tj = get("trtforge", tb.concurrency, tb.rows)
    if tb and tj:
        ratio(
            f"binary vs JSON rows/s at {tb.rows} rows (c={tb.concurrency})", tb.rows_per_s, tj.rows_per_s, 3.0
        )
    if "trtforge" in rss and "fastapi" in rss:
        mine, theirs = rss["trtforge"][0], rss["fastapi"][0]
        out.append(
            f"{'PASS' if mine <= theirs + 30 else 'MISS'} idle RSS: {mine:.1f} MB vs fastapi {theirs:.1f} MB "
            "(target <= fastapi + 30 MB)"
        )
    return out


def median_cell(tries: list[Cell]) -> Cell:
    """The round with the median req/s, carrying every round's figures and the summed errors."""
    ordered = sorted(tries, key=lambda c: c.rps)
    cell = ordered[len(ordered) // 2]
    cell.rps_runs = [c.rps for c in tries]
    cell.p99_runs = [c.p99_ms for c in tries]
    cell.errors = sum(c.errors for c in tries)
    cell.wrong = [w for c in tries for w in c.wrong]
    cell.checked = sum(c.checked for c in tries)
    return cell


def _results_module() -> Any:
    sys.path.insert(0, str(REPO))
    from benchmarks import results

    return results


def write_results(args: argparse.Namespace, cells: list[Cell], rss: dict[str, tuple[float, float]]) -> None:
    """benchmarks/results/NAME.json: one row per cell (median of the rounds), ratios against peers."""
    results = _results_module()
    fmt = results.fmt
    rows = [
        [
            c.server,
            str(c.concurrency),
            str(c.rows),
            c.encoding,
            fmt(c.rps_runs, "req/s", 0),
            fmt(c.p99_runs, "ms", 2),
            str(c.errors),
        ]
        for c in cells
    ]
    values: dict[str, str] = {}
    by_key = {(c.server, c.concurrency, c.rows, c.encoding): c for c in cells}
    for c in cells:
        if c.server == "trtforge":
            continue
        mine = by_key.get(("trtforge", c.concurrency, c.rows, c.encoding))
        if mine is None or not c.rps_runs:
            continue
        ratios = [a / b for a, b in zip(mine.rps_runs, c.rps_runs, strict=False) if b]
        key = f"{c.server}.c{c.concurrency}_r{c.rows}_{c.encoding}".replace("-", "_")
        values[f"ratio.{key}"] = fmt(ratios, "×", 2)
        values[f"p99.{key}"] = f"{np.median(mine.p99_runs):.2f} ms vs {np.median(c.p99_runs):.2f} ms"
    for c in cells:
        values[f"rps.{c.server}.c{c.concurrency}_r{c.rows}_{c.encoding}".replace("-", "_")] = fmt(
            c.rps_runs, "req/s", 0
        )
    results.write(
        args.results,
        command="python benchmarks/serving_bench.py " + " ".join(sys.argv[1:]),
        runs=args.rounds,
        tables={
            "cells": {
                "columns": ["server", "clients", "rows", "body", "req/s", "p99", "errors"],
                "rows": rows,
            }
        },
        values=values,
        data={
            "cells": [{**c.__dict__, "rows_per_s": c.rows_per_s} for c in cells],
            "rss_mb": {k: {"idle": v[0], "after_load": v[1]} for k, v in rss.items()},
        },
        packages=["onnxruntime", "uvloop", "httptools", "uvicorn", "orjson", "prometheus-client", "numpy"],
    )


def scaling(args: argparse.Namespace, workdir: Path, model: Path, engine: Path, tmp: Path) -> int:
    """req/s of `trtforge serve --workers N` (server on CPUs 0..N-1, wrk on others), 1-row JSON."""
    counts = [int(n) for n in args.scaling.split(",")]
    body = make_body(1, "json")
    expected = run_onnx(model, body.x)
    logs = workdir / "logs"
    runs: dict[int, list[Cell]] = {}
    for round_no in range(1, args.rounds + 1):
        for n in counts:
            spec = server_spec("trtforge", workdir, model, engine, workers=n)
            conns = 64 * n
            print(f"[workers={n}] round {round_no}: {' '.join(spec.argv)}", flush=True)
            with running(spec, f"0-{n - 1}", logs / f"trtforge-w{n}.log"):
                time.sleep(1.0)
                cell = measure(
                    f"trtforge-w{n}",
                    spec.port,
                    body,
                    expected,
                    conns,
                    args,
                    tmp,
                    load_cpu=args.scaling_load_cpus,
                    threads=args.scaling_threads,
                )
            runs.setdefault(n, []).append(cell)
            print(
                f"[workers={n}] c={conns} {cell.rps:9.0f} req/s p99 {cell.p99_ms:7.2f} ms "
                f"errors {cell.errors}"
            )
    cells = {n: median_cell(tries) for n, tries in runs.items()}
    base = cells[counts[0]]
    for n, c in cells.items():
        print(
            f"workers {n:>2}: {c.rps:9.0f} req/s ({c.rps / base.rps:.2f}x of {counts[0]}) "
            f"p99 {c.p99_ms:.2f} ms"
        )
    if args.results:
        results = _results_module()
        fmt = results.fmt
        rows = []
        values = {}
        for n, c in cells.items():
            speedup = [a / b for a, b in zip(c.rps_runs, base.rps_runs, strict=False) if b]
            rows.append(
                [
                    str(n),
                    str(64 * n),
                    fmt(c.rps_runs, "req/s", 0),
                    fmt(speedup, "×", 2),
                    fmt(c.p99_runs, "ms", 2),
                ]
            )
            values[f"speedup.w{n}"] = fmt(speedup, "×", 2)
            values[f"rps.w{n}"] = fmt(c.rps_runs, "req/s", 0)
        results.write(
            args.results,
            command="python benchmarks/serving_bench.py " + " ".join(sys.argv[1:]),
            runs=args.rounds,
            tables={
                "workers": {
                    "columns": ["workers", "clients", "req/s", "vs 1 worker", "p99"],
                    "rows": rows,
                }
            },
            values=values,
            data={"cells": {str(n): c.__dict__ for n, c in cells.items()}},
            packages=["onnxruntime", "uvloop", "httptools", "orjson", "prometheus-client", "numpy"],
        )
    return 0


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=REPO / ".bench", help="cache: venvs, model, logs")
    p.add_argument("--servers", default=",".join(ALL_SERVERS), help=f"comma list of {', '.join(ALL_SERVERS)}")
    p.add_argument("--engine", type=Path, default=None, help="a `trtforge convert` output to serve instead")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--rows", default="1,32", help="rows per request, V2 JSON")
    p.add_argument(
        "--big-rows", type=int, default=256, help="rows for the JSON vs binary comparison (0: skip)"
    )
    p.add_argument("--big-concurrency", type=int, default=16)
    p.add_argument("--duration", type=int, default=6, help="measured seconds per cell")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per cell")
    p.add_argument("--rounds", type=int, default=1, help="repeat everything; cells report the median round")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--load-cpu", default="1", help="CPU(s) of wrk, taskset syntax (e.g. 1 or 8-15)")
    p.add_argument(
        "--load-threads", type=int, default=1, help="wrk threads (one thread caps near 20k req/s here)"
    )
    p.add_argument("--setup-only", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--results", default=None, help="write benchmarks/results/NAME.json (docs figures)")
    p.add_argument(
        "--scaling",
        default=None,
        help="instead: trtforge with these worker counts (e.g. 1,2,4,8), server on CPUs 0..N-1",
    )
    p.add_argument("--scaling-load-cpus", default="8-15", help="CPUs of wrk in --scaling")
    p.add_argument("--scaling-threads", type=int, default=8, help="wrk threads in --scaling")
    args = p.parse_args(argv)

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    if shutil.which("taskset") is None:
        raise SystemExit("taskset is not installed (util-linux)")
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.scaling:
        servers = ["trtforge"]
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    own = {"trtforge", "trtforge-uvicorn", "trtforge-before"}  # run from this environment
    for name in {"mlserver" if s.startswith("mlserver") else s for s in servers} - own:
        ensure_venv(workdir, name)
    if args.setup_only:
        return 0

    if args.engine:
        engine = args.engine.resolve()
        model = engine / "onnxruntime" / "model.onnx"
    else:
        model = workdir / "model" / "digits.onnx"
        build_model(model)
        engine = make_engine_dir(workdir / "engine", model)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-", dir=workdir))

    if args.scaling:
        return scaling(args, workdir, model, engine, tmp)

    plan: list[tuple[int, Body]] = []
    for rows in (int(r) for r in args.rows.split(",")):
        body = make_body(rows, "json")
        plan += [(int(c), body) for c in args.concurrency.split(",")]
    big_json = make_body(args.big_rows, "json") if args.big_rows else None
    big_binary = make_body(args.big_rows, "binary") if args.big_rows else None
    expected = {b.data: run_onnx(model, b.x) for _, b in plan}
    if big_json and big_binary:
        expected[big_json.data] = expected[big_binary.data] = run_onnx(model, big_json.x)

    # rounds: every server once per round (interleaved, so slow drifts of the machine hit all alike);
    # each cell reports its median round (and the spread), errors summed over the rounds
    runs: dict[tuple[str, int, int, str], list[Cell]] = {}
    rss: dict[str, tuple[float, float]] = {}
    for round_no in range(1, args.rounds + 1):
        for name in servers:
            spec = server_spec(name, workdir, model, engine)
            print(f"[{name}] round {round_no}: {' '.join(spec.argv)}", flush=True)
            try:
                with running(spec, args.server_cpu, logs / f"{name}.log") as proc:
                    time.sleep(1.0)
                    idle = tree_rss_mb(proc.pid)
                    todo = list(plan)
                    if big_json and big_binary:
                        todo.append((args.big_concurrency, big_json))
                        if spec.binary:
                            todo.append((args.big_concurrency, big_binary))
                    for conns, body in todo:
                        cell = measure(
                            name,
                            spec.port,
                            body,
                            expected[body.data],
                            conns,
                            args,
                            tmp,
                            None,
                            min(args.load_threads, conns),
                        )
                        runs.setdefault((name, conns, body.rows, body.encoding), []).append(cell)
                        print(
                            f"[{name}] c={conns:<3} rows={body.rows:<4} {body.encoding:<6} {cell.rps:9.0f} "
                            f"req/s p99 {cell.p99_ms:7.2f} ms errors {cell.errors}"
                            + (f" wrong: {cell.wrong[0]}" if cell.wrong else ""),
                            flush=True,
                        )
                    loaded = tree_rss_mb(proc.pid)
                    before = rss.get(name, (idle, loaded))
                    rss[name] = (min(before[0], idle), max(before[1], loaded))
            except RuntimeError as exc:
                print(f"[{name}] FAILED: {exc}", flush=True)
    cells = [median_cell(tries) for tries in runs.values()]
    shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(table(cells, rss))
    print()
    for line in targets(cells, rss):
        print(line)
    if args.results:
        write_results(args, cells, rss)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cells": [{**c.__dict__, "rows_per_s": c.rows_per_s} for c in cells],
                    "rss_mb": {k: {"idle": v[0], "after_load": v[1]} for k, v in rss.items()},
                    "targets": targets(cells, rss),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
