"""Parsing of /metrics text and concurrent scraping of real HTTP endpoints."""

from __future__ import annotations

import socket

import pytest
from autoscaling_metrics_pods import MetricsPods
from trtforge_operator.autoscaling.scrape import (
    INFLIGHT_METRIC,
    REQUESTS_METRIC,
    MetricsScraper,
    ScrapeTarget,
    parse_metric,
)
from trtforge_operator.errors import AutoscalingError, MetricsError

GOOD = (
    "# HELP trtforge_inflight_requests In flight.\n"
    "# TYPE trtforge_inflight_requests gauge\n"
    'trtforge_inflight_requests{model="digits"} 3\n'
    "# TYPE trtforge_requests counter\n"
    'trtforge_requests_total{model="digits",code="200"} 10\n'
    'trtforge_requests_total{model="digits",code="503"} 2\n'
    'trtforge_requests_created{model="digits",code="200"} 1.7e9\n'
)


def test_parse_reads_the_gauge_and_sums_counter_labels() -> None:
    assert parse_metric(GOOD, INFLIGHT_METRIC) == 3.0
    assert parse_metric(GOOD, REQUESTS_METRIC) == 12.0  # _created samples are not requests
    two = 'trtforge_inflight_requests{model="a"} 3\ntrtforge_inflight_requests{model="b"} 4.5\n'
    assert parse_metric(two, INFLIGHT_METRIC) == 7.5


def test_parse_reads_the_runtimes_own_metrics() -> None:
    """The contract with the serving runtime: its real ServeMetrics exposition."""
    from trtforge_runtime.serve.metrics import ServeMetrics

    metrics = ServeMetrics()
    fresh = metrics.render().decode()
    # no request yet: the labelled metrics are declared without samples, which means 0, not "missing"
    assert parse_metric(fresh, INFLIGHT_METRIC) == 0.0
    assert parse_metric(fresh, REQUESTS_METRIC) == 0.0
    metrics.inflight.labels("digits").inc(3)
    metrics.requests.labels("digits", "rest", "200").inc(40)
    metrics.requests.labels("digits", "grpc", "503").inc(2)
    text = metrics.render().decode()
    assert parse_metric(text, INFLIGHT_METRIC) == 3.0
    assert parse_metric(text, REQUESTS_METRIC) == 42.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trtforge_inflight_requests NaN\n", "is nan"),
        ("trtforge_inflight_requests -1\n", "is -1.0"),
        ("trtforge_inflight_requests +Inf\n", "is inf"),
        ("this is { not prometheus\n", "not Prometheus text format"),
        ("trtforge_inflight_requests abc\n", "not Prometheus text format"),
        ('trtforge_inflight_requests{model="a} 3\n', "not Prometheus text format"),
        ("<html><body>oops</body></html>", "not Prometheus text format"),
        ("", "is missing"),
        ("other_metric 1\n", "metric trtforge_inflight_requests is missing"),
        ("# TYPE trtforge_inflight_requests_other gauge\n", "is missing"),
    ],
)
def test_parse_refuses_unusable_metrics_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(MetricsError, match=message) as info:
        parse_metric(text, INFLIGHT_METRIC)
    assert isinstance(info.value, AutoscalingError)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.asyncio
async def test_scrape_reads_every_pod_and_reports_each_failure(metrics_pods: MetricsPods) -> None:
    good = metrics_pods.add("good", inflight=5)
    nan = metrics_pods.add("nan", inflight=float("nan"))
    negative = metrics_pods.add("negative", inflight=-2)
    garbage = metrics_pods.add("garbage", body="<html>not metrics</html>")
    missing = metrics_pods.add("missing", body="process_cpu_seconds_total 1.5\n")
    error = metrics_pods.add("error", status=500)
    slow = metrics_pods.add("slow", inflight=1, delay=1.0)
    targets = [ScrapeTarget(p.name, p.url) for p in (good, nan, negative, garbage, missing, error, slow)]
    targets.append(ScrapeTarget("refused", f"http://127.0.0.1:{_closed_port()}/metrics"))

    async with MetricsScraper(timeout=0.5) as scraper:
        results = await scraper.scrape(targets, INFLIGHT_METRIC)

    by_pod = {r.pod: r for r in results}
    assert [r.pod for r in results] == [t.pod for t in targets]
    assert by_pod["good"].value == 5.0 and by_pod["good"].problem is None
    expected_problems = {
        "nan": "is nan",
        "negative": "is -2.0",
        "garbage": "not Prometheus text format",
        "missing": "is missing",
        "error": "HTTP 500",
        "slow": "no answer within 0.5s",
        "refused": "ClientConnectorError",
    }
    for pod, problem in expected_problems.items():
        assert by_pod[pod].value is None, pod
        assert problem in (by_pod[pod].problem or ""), (pod, by_pod[pod].problem)


@pytest.mark.asyncio
async def test_scrape_reads_large_answers_whole_and_refuses_huge_ones(metrics_pods: MetricsPods) -> None:
    filler = "".join(f'other_histogram_bucket{{le="{i}"}} {i}\n' for i in range(20_000))  # ~600 kB
    big = metrics_pods.add("big", body=filler + "trtforge_inflight_requests 7\n")
    async with MetricsScraper(timeout=2.0, max_bytes=4 * 1024 * 1024) as scraper:
        (result,) = await scraper.scrape([ScrapeTarget("big", big.url)], INFLIGHT_METRIC)
    assert result.value == 7.0, result.problem
    async with MetricsScraper(timeout=2.0, max_bytes=100_000) as scraper:
        (result,) = await scraper.scrape([ScrapeTarget("big", big.url)], INFLIGHT_METRIC)
    assert result.value is None and "larger than 100000 bytes" in (result.problem or "")


@pytest.mark.asyncio
async def test_scrape_of_many_pods_is_concurrent(metrics_pods: MetricsPods) -> None:
    pods = [metrics_pods.add(f"p{i}", inflight=i) for i in range(20)]
    metrics_pods.gate = 20  # no pod answers before all 20 are asked: one after another would time out
    # the time-out only guards against a hang (how long a scrape of 50 pods takes: autoscaler_bench.py)
    async with MetricsScraper(timeout=10.0) as scraper:
        results = await scraper.scrape([ScrapeTarget(p.name, p.url) for p in pods], INFLIGHT_METRIC)
    assert [r.value for r in results] == [float(i) for i in range(20)], [r.problem for r in results]
    assert metrics_pods.max_in_flight == 20


@pytest.mark.asyncio
async def test_scraper_session_is_reused_and_closed(metrics_pods: MetricsPods) -> None:
    pod = metrics_pods.add("p", inflight=2, requests_total=40)
    scraper = MetricsScraper(timeout=1.0)
    first = await scraper.scrape([ScrapeTarget("p", pod.url)], REQUESTS_METRIC)
    session = scraper._session
    second = await scraper.scrape([ScrapeTarget("p", pod.url)], REQUESTS_METRIC)
    assert scraper._session is session
    assert first[0].value == second[0].value == 40.0
    await scraper.close()
    assert scraper._session is None


def test_scraper_refuses_a_non_positive_timeout() -> None:
    with pytest.raises(AutoscalingError, match="scrape timeout must be > 0"):
        MetricsScraper(timeout=0)
