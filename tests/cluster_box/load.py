"""Closed-loop load through a Service: N clients, each sending the next V2 inference request as soon as
the previous one answered, over a keep-alive HTTP/1.1 connection (as a pooled HTTP client does).

Each request carries `batch` rows of the test split (bodies encoded once, so the servers set the pace and
their in-flight count, the autoscaler's concurrency metric, reflects the clients). A request counts as ok
when the answer is 200 with one output row per input row; anything else (a refused or
reset connection, a 5xx, a wrong body) counts as failed, with the reason kept. The number of clients can
change while it runs (`set_clients`), so one load can drive a scale-up, a scale-down and a rollout.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LoadStats:
    ok: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        lat = sorted(self.latencies[-2000:])
        p50 = lat[len(lat) // 2] * 1000 if lat else 0.0
        return {"ok": self.ok, "failed": self.failed, "p50_ms": round(p50, 2), "reasons": dict(self.reasons)}


class ClosedLoopLoad:
    def __init__(
        self,
        host: str,
        port: int,
        model: str,
        input_name: str,
        rows: np.ndarray,
        prefix: str = "",
        batch: int = 32,
    ) -> None:
        self.host, self.port, self.model, self.prefix = host, port, model, prefix
        self.input_name = input_name
        self.batch = batch
        rows = rows.astype(np.float32)
        # bodies encoded once: the clients cost little, so the servers (not this process) set the pace
        self.bodies = [self._body(rows, i) for i in range(0, len(rows) - batch + 1, batch)]
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._threads: list[tuple[threading.Thread, threading.Event]] = []

    def _body(self, rows: np.ndarray, start: int) -> bytes:
        chunk = rows[start : start + self.batch]
        tensor = {
            "name": self.input_name,
            "shape": list(chunk.shape),
            "datatype": "FP32",
            "data": [float(v) for v in chunk.ravel()],
        }
        return json.dumps({"inputs": [tensor]}).encode()

    def _client(self, stop: threading.Event, seed: int) -> None:
        conn: http.client.HTTPConnection | None = None
        path = f"{self.prefix}/v2/models/{self.model}/infer"
        i = seed
        while not stop.is_set():
            body = self.bodies[i % len(self.bodies)]
            i += 1
            started = time.perf_counter()
            reason = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    reason = f"HTTP {resp.status}: {data[:120]!r}"
                else:
                    outputs = json.loads(data).get("outputs") or [{}]
                    if outputs[0].get("shape") != [self.batch, 10]:
                        reason = f"unexpected outputs {str(outputs)[:120]}"
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if conn is not None:
                    conn.close()
                conn = None
            with self._lock:
                if reason is None:
                    self.stats.ok += 1
                    self.stats.latencies.append(time.perf_counter() - started)
                else:
                    self.stats.failed += 1
                    self.stats.reasons[reason[:160]] += 1
            if reason is not None:
                time.sleep(0.05)  # a failed client does not spin
        if conn is not None:
            conn.close()

    @property
    def clients(self) -> int:
        return len(self._threads)

    def set_clients(self, n: int) -> None:
        while len(self._threads) < n:
            stop = threading.Event()
            t = threading.Thread(target=self._client, args=(stop, len(self._threads) * 97), daemon=True)
            t.start()
            self._threads.append((t, stop))
        while len(self._threads) > n:
            t, stop = self._threads.pop()
            stop.set()
            t.join(35)

    def stop(self) -> None:
        self.set_clients(0)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.stats.ok, self.stats.failed
