"""Concurrent scraping of the serving pods' `/metrics` for the built-in autoscaler.

One aiohttp session (keep-alive connections, a bounded connection pool) fetches every ready pod's
Prometheus text at once, each request bounded by a time-out, and `parse_metric` reads one metric from
it with prometheus_client's parser. A pod that fails in any way (refused, timed out, HTTP error, not
Prometheus text, the metric missing, NaN, infinite or negative) yields `value=None` with the problem in
words; the algorithm then counts that pod as its last usable value, else at target. Nothing here raises
for a bad pod.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trtforge_operator.errors import AutoscalingError, MetricsError

INFLIGHT_METRIC = "trtforge_inflight_requests"
REQUESTS_METRIC = "trtforge_requests_total"


@dataclass(frozen=True)
class ScrapeTarget:
    pod: str
    url: str


@dataclass(frozen=True)
class PodScrape:
    pod: str
    value: float | None
    problem: str | None  # why value is None
    seconds: float


def parse_metric(text: str, sample_name: str) -> float:
    """The sum of all samples named `sample_name` (over their labels) in Prometheus text format.

    A metric the exporter declares (`# TYPE`) but has no samples of is 0: prometheus_client prints a
    labelled gauge or counter that way until its first labelled child exists (the runtime's in-flight
    gauge before its first request). Raises MetricsError when the text does not parse, the metric is
    absent, or a sample is NaN, infinite or negative.
    """
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    found = 0
    declared = False  # the exporter declares the metric (HELP/TYPE), possibly without samples yet
    family_names = {sample_name, sample_name.removesuffix("_total")}
    try:
        for family in text_string_to_metric_families(text):
            declared = declared or family.name in family_names
            for sample in family.samples:
                if sample.name != sample_name:
                    continue
                value = float(sample.value)
                if not math.isfinite(value) or value < 0:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    raise MetricsError(f"{sample_name}{{{labels}}} is {value}: not a finite value >= 0")
                total += value
                found += 1
    except MetricsError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # the parser's ways of refusing text
        raise MetricsError(f"not Prometheus text format: {exc}") from exc
    if not found and not declared:
        raise MetricsError(f"metric {sample_name} is missing")
    return total  # declared without samples: a labelled metric nothing was counted in yet, i.e. 0


class MetricsScraper:
    """Scrapes many pods concurrently with one pooled session; use within one event loop."""

    def __init__(
        self, *, timeout: float = 1.0, max_connections: int = 100, max_bytes: int = 4 * 1024 * 1024
    ) -> None:
        if timeout <= 0:
            raise AutoscalingError(f"scrape timeout must be > 0, got {timeout}")
        self.timeout = timeout
        self.max_connections = max_connections
        self.max_bytes = max_bytes
        self._session: Any = None  # aiohttp.ClientSession, created in the running loop

    async def __aenter__(self) -> MetricsScraper:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=60),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Accept": "text/plain;version=0.0.4"},
            )
        return self._session

    async def scrape(self, targets: Sequence[ScrapeTarget], sample_name: str) -> list[PodScrape]:
        """One PodScrape per target, in order; the whole call takes at most about `timeout`."""
        session = self._client()
        return list(await asyncio.gather(*(self._one(session, t, sample_name) for t in targets)))

    async def _one(self, session: Any, target: ScrapeTarget, sample_name: str) -> PodScrape:
        import aiohttp

        started = time.perf_counter()
        try:
            async with session.get(target.url) as response:
                if response.status != 200:
                    raise MetricsError(f"HTTP {response.status}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise MetricsError(f"answer larger than {self.max_bytes} bytes")
                    chunks.append(chunk)
            value = parse_metric(b"".join(chunks).decode("utf-8"), sample_name)
            return PodScrape(target.pod, value, None, time.perf_counter() - started)
        except TimeoutError:
            problem = f"no answer within {self.timeout:g}s"
        except aiohttp.ClientError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        except UnicodeDecodeError:
            problem = "answer is not UTF-8 text"
        except MetricsError as exc:
            problem = str(exc)
        return PodScrape(target.pod, None, problem, time.perf_counter() - started)
