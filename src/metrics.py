"""GET /metrics: Prometheus text from the official client (API.md "Metrics and logs").

The core every component registers with: HTTP requests are counted and timed by the edge
(`observe`), labelled by route *template* (never the raw path: the label set stays
bounded; unmatched paths share one label); the process's memory, descriptors, CPU and
garbage collector come from the client's standard collectors; everything else is read when
scraped, from collectors the components bring (sockets, frames and closes, the pool, the
broker, the feed), so the WebSocket fan-out pays nothing per frame but an integer
increment. Each process has its own numbers (with several workers, scrape each).
"""

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import Counter as PromCounter
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """One app's metrics: its own registry (several apps in one test process never share
    numbers), the HTTP counters, the standard process collectors, and the components'."""

    def __init__(self, collectors: Iterable[Collector] = ()) -> None:
        self.prometheus = CollectorRegistry()
        self.requests = PromCounter(
            "catalog_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.prometheus,
        )
        self.duration = Histogram(
            "catalog_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its response.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.prometheus,
        )
        # process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total, ...,
        # python_info and python_gc_*: the client's standard collectors, in this registry.
        ProcessCollector(registry=self.prometheus)
        PlatformCollector(registry=self.prometheus)
        GCCollector(registry=self.prometheus)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        for collector in collectors:
            self.prometheus.register(collector)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels() per request costs a lock and a tuple: done once
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.prometheus)
