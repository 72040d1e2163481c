"""GET /metrics: Prometheus text from the official client (API.md "Metrics and logs").

HTTP requests are counted by an outer middleware, labelled by route *template* (never the
raw path: the label set stays bounded; unmatched paths share one label). Everything else
is read when scraped, from the objects that already know it (the pool, the feed here; the
WebSocket and broker metrics by the collectors the app passes in). Each process has its own
numbers (with several workers, scrape each).
"""

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from src.asgi import ASGIApp, Scope
from src.catalog.feed import CatalogFeed
from src.db.pool import Database

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """One app's metrics. `database` is set by the lifespan once the pool is open;
    `collectors` (the WebSocket and broker ones) are read at scrape time as well."""

    def __init__(self, feed: CatalogFeed, collectors: Iterable[Collector] = ()) -> None:
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
        self.database: Database | None = None
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        for collector in collectors:
            self.prometheus.register(collector)
        self.prometheus.register(_Snapshot(self, feed))

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


class _Snapshot(Collector):
    """What is read at scrape time."""

    def __init__(self, metrics: Metrics, feed: CatalogFeed):
        self.metrics, self.feed = metrics, feed

    def collect(self) -> Iterator[Metric]:
        yield from self._pool()
        yield GaugeMetricFamily(
            "catalog_feed_lag_seconds",
            "Seconds since the catalog feed last read the outbox (at most the poll interval "
            "while its database connection is up).",
            value=max(0.0, time.time() - self.feed.delivered_at),
        )
        yield GaugeMetricFamily(
            "catalog_feed_position",
            "The newest change id the feed has delivered.",
            value=self.feed.position,
        )

    def _pool(self) -> Iterator[Metric]:
        pool = GaugeMetricFamily(
            "catalog_db_pool_connections",
            "Pooled PostgreSQL connections: in use, idle, the maximum, and requests waiting.",
            labels=["state"],
        )
        db = self.metrics.database
        if db is not None:
            size, idle = db.pool.get_size(), db.pool.get_idle_size()
            pool.add_metric(["in_use"], size - idle)
            pool.add_metric(["idle"], idle)
            pool.add_metric(["max"], db.pool.get_max_size())
            pool.add_metric(["waiting"], db.waiting)
        yield pool


class HttpMetrics:
    """Outermost but for the request id: times every HTTP request and counts its status."""

    def __init__(self, app: ASGIApp, metrics: Metrics, template: Callable[[Scope], str | None]):
        self.app, self.metrics, self.template = app, metrics, template

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def _send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = self.template(scope) or UNMATCHED
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
