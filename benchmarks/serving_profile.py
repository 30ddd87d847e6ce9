"""Per-request cost of `trtforge serve` on a 1-row V2 JSON request, and where it goes, in one process.

The real server (HTTP protocol, routes, data plane, batcher, onnxruntime backend, metrics) answers
requests fed straight into one connection's protocol object through an in-memory transport: no kernel,
no client, so the figure is the server's own CPU per request. Then the same loop runs under cProfile and
the time is grouped by stage: HTTP (httptools parse + our framing), JSON decode/encode, data plane
checks, batcher hand-off, the backend, metrics, and the event loop itself.

    python benchmarks/serving_profile.py --runs 5 --requests 5000 [--results serving_profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# --runtime DIR profiles another checkout's runtime package (e.g. before a change); default: this one's
_runtime = sys.argv[sys.argv.index("--runtime") + 1] if "--runtime" in sys.argv else str(REPO / "runtime")
sys.path.insert(0, _runtime)

STAGES = [  # (stage, substrings of "file:function" that belong to it), first match wins
    ("backend (onnxruntime)", ["onnxruntime", "backends/"]),
    ("metrics (prometheus-client)", ["prometheus_client", "serve/metrics.py"]),
    (
        "JSON decode + encode (orjson, numpy)",
        ["codec_json", "codec_binary", "serve/types.py", "orjson", "numpy"],
    ),
    ("data plane checks", ["serve/dataplane.py"]),
    ("batcher hand-off", ["serve/batcher.py"]),
    ("HTTP parse, route, framing", ["httptools", "serve/http1.py", "serve/rest.py", "email/utils", "parse"]),
    ("event loop, tasks, futures", ["asyncio", "uvloop", "<built-in method _asyncio", "{method"]),
]


class Transport:
    """An in-memory asyncio transport: counts what the server writes."""

    def __init__(self) -> None:
        self.writes = 0
        self.last = b""

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.last = data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool:
        return False

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def request_bytes() -> bytes:
    doc = {
        "inputs": [
            {
                "name": "pixels",
                "shape": [1, 64],
                "datatype": "FP32",
                "data": [float(i % 17) for i in range(64)],
            }
        ]
    }
    body = json.dumps(doc).encode()
    return (
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


async def serve_loop(engine: Path, runs: int, requests: int, profile: cProfile.Profile | None) -> list[float]:
    from trtforge_runtime.serve.http1 import HttpProtocol
    from trtforge_runtime.serve.server import Server
    from trtforge_runtime.serve.settings import ServeSettings

    server = Server(
        ServeSettings(
            engine_dir=engine, host="127.0.0.1", port=0, grpc_port=0, backend="onnxruntime", name="digits"
        )
    )
    await server.start()
    await server.wait_loaded()
    proto = HttpProtocol(server.rest)
    transport = Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    raw = request_bytes()
    per_request: list[float] = []
    sleep = asyncio.sleep
    for _ in range(runs):
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        for _ in range(requests):
            target = transport.writes + 1
            proto.data_received(raw)
            while transport.writes < target:
                await sleep(0)
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
        per_request.append(elapsed / requests * 1e6)
    assert transport.last.startswith(b"HTTP/1.1 200"), transport.last[:200]
    await server.shutdown()
    return per_request


def stage_of(key: tuple[str, int, str]) -> str:
    where = f"{key[0]}:{key[2]}"
    for stage, needles in STAGES:
        if any(n in where for n in needles):
            return stage
    return "other (Python glue)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", type=Path, default=None, help="a `trtforge convert` output (default: built)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--results", default=None)
    p.add_argument("--runtime", default=None, help="folder holding trtforge_runtime (default: runtime/)")
    args = p.parse_args()
    engine = args.engine
    if engine is None:
        from benchmarks.serving_bench import build_model, make_engine_dir

        tmp = Path(tempfile.mkdtemp())
        build_model(tmp / "digits.onnx")
        engine = make_engine_dir(tmp / "engine", tmp / "digits.onnx")
    from trtforge_runtime.serve.command import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:  # uvloop, as `trtforge serve`
        plain = runner.run(serve_loop(engine, args.runs, args.requests, None))
    profile = cProfile.Profile()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve_loop(engine, 1, args.requests, profile))
    stats = pstats.Stats(profile)
    shares: dict[str, float] = {}
    total = 0.0
    for key, (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        shares[stage_of(key)] = shares.get(stage_of(key), 0.0) + tottime
        total += tottime
    median = statistics.median(plain)
    print(
        f"server CPU per 1-row JSON request: {median:.1f} µs (runs: {', '.join(f'{x:.1f}' for x in plain)})"
    )
    rows = []
    for stage, t in sorted(shares.items(), key=lambda kv: -kv[1]):
        share = t / total
        print(f"  {stage:<40} {share:6.1%}  ~{share * median:6.1f} µs")
        rows.append([stage, f"{share:.0%}", f"{share * median:.1f} µs"])
    if args.results:
        from benchmarks.results import fmt, write

        write(
            args.results,
            command="python benchmarks/serving_profile.py " + " ".join(sys.argv[1:]),
            runs=args.runs,
            tables={"stages": {"columns": ["stage", "share (cProfile)", "≈ µs per request"], "rows": rows}},
            values={"per_request": fmt(plain, "µs", 1)},
            data={"per_request_us": plain, "stage_seconds": shares},
            packages=["onnxruntime", "uvloop", "httptools", "orjson", "prometheus-client", "numpy"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
