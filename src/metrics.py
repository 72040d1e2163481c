"""GET /metrics: Prometheus text from the official client (API.md "Metrics and logs").

The core every component registers with: HTTP requests are counted and timed by the edge
(`observe`), labelled by route *template* (never the raw path: the label set stays
bounded; unmatched paths share one label); the process's memory, descriptors, CPU and
garbage collector come from the client's standard collectors; everything else is read when
scraped, from collectors the components bring (sockets, frames and closes, the pool, the
broker, the feed), so the WebSocket fan-out pays nothing per frame but an integer
increment. Each process has its own numbers (with several workers, scrape each).
"""

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BOUNDS = [*(repr(b) for b in BUCKETS), "+Inf"]  # as the client library writes them


class Metrics:
    """One app's metrics: its own registry (several apps in one test process never share
    numbers), the HTTP requests, the standard process collectors, and the components'."""

    def __init__(self, collectors: Iterable[Collector] = ()) -> None:
        self.prometheus = CollectorRegistry()
        self.requests = RequestStats()
        self.prometheus.register(self.requests)
        self.observe = self.requests.observe  # the edge calls it once per request
        # process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total, ...,
        # python_info and python_gc_*: the client's standard collectors, in this registry.
        ProcessCollector(registry=self.prometheus)
        PlatformCollector(registry=self.prometheus)
        GCCollector(registry=self.prometheus)
        for collector in collectors:
            self.prometheus.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.prometheus)


class RequestStats(Collector):
    """HTTP requests by method, route template and status, and their durations by method and
    route: counted with plain integer and float additions on the event loop (the client
    library's Counter and Histogram take a lock per update, a third of the edge's own cost
    per request), turned into Prometheus families when scraped."""

    def __init__(self) -> None:
        # (method, route, status) -> [count, seconds summed, count per bucket (one more: +Inf)]
        self._entries: dict[tuple[str, str, int], list[Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        entry = self._entries.get((method, route, status))
        if entry is None:
            entry = self._entries[(method, route, status)] = [0, 0.0, [0] * (len(BUCKETS) + 1)]
        entry[0] += 1
        entry[1] += seconds
        entry[2][bisect_left(BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "catalog_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=["method", "route", "status"],
        )
        durations: dict[tuple[str, str], list[Any]] = {}
        for (method, route, status), (count, total, buckets) in sorted(self._entries.items()):
            requests.add_metric([method, route, str(status)], count)
            merged = durations.setdefault((method, route), [0.0, [0] * len(buckets)])
            merged[0] += total
            merged[1] = [a + b for a, b in zip(merged[1], buckets, strict=True)]
        yield requests
        duration = HistogramMetricFamily(
            "catalog_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its response.",
            labels=["method", "route"],
        )
        for (method, route), (total, buckets) in durations.items():
            cumulative = list(accumulate(buckets))
            duration.add_metric([method, route], list(zip(BOUNDS, cumulative, strict=True)), total)
        yield duration
