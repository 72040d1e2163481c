"""The service's own endpoints (a feature): the time, liveness, readiness and metrics."""

from datetime import datetime
from typing import Annotated

import msgspec
from lihil import Route
from lihil.vendors import Response

from src.broker.base import Broker
from src.component import Component
from src.db.pool import Database, ping
from src.edge.routes import operation
from src.errors import BrokerUnavailable, DatabaseUnavailable
from src.metrics import CONTENT_TYPE, Metrics


class ServerTime(msgspec.Struct, frozen=True):
    """The server's local date and time of day."""

    month: Annotated[int, msgspec.Meta(ge=1, le=12)]
    day: Annotated[int, msgspec.Meta(ge=1, le=31)]
    time: Annotated[str, msgspec.Meta(description="HH:MM:SS.ffffff", examples=["13:05:09.123456"])]


class Health(msgspec.Struct, frozen=True):
    """`ok` from /health, `ready` from /ready."""

    status: Annotated[str, msgspec.Meta(examples=["ok"])]


@operation("getTime", "Server time")
async def get_time() -> ServerTime:
    """The server's local month, day and time of day (the tutorial's first endpoint)."""
    now = datetime.now()
    return ServerTime(month=now.month, day=now.day, time=now.strftime("%H:%M:%S.%f"))


@operation("getHealth", "Liveness")
async def health() -> Health:
    """Liveness: 200 while the process runs."""
    return Health(status="ok")


@operation("getMetrics", "Prometheus metrics", content_type="text/plain")
async def metrics_text(metrics: Metrics) -> str:
    """Prometheus text: requests, latency, process, sockets, closes, pool, broker, feed."""
    return Response(metrics.render(), media_type=CONTENT_TYPE)  # type: ignore[return-value]


@operation("getReady", "Readiness", DatabaseUnavailable, BrokerUnavailable)
async def ready(db: Database, broker: Broker) -> Health:
    """Readiness: 200 when the database and the broker answer, 503 when one does not."""
    await ping(db)  # DatabaseUnavailable (503) when it does not; the log has the details
    if not broker.available:  # the broker logged the outage when it began
        raise BrokerUnavailable(
            "the broker (Redis) is unreachable: WebSockets serve each process's own clients"
        )
    return Health(status="ready")


class Service(Component):
    tags = ({"name": "service", "description": "Server time, liveness and readiness."},)

    def routes(self) -> list[Route]:
        time, health_route, ready_route, metrics_route = (
            Route("/time"),
            Route("/health"),
            Route("/ready"),
            Route("/metrics"),
        )
        time.get(get_time, tags=["service"])
        health_route.get(health, tags=["service"])
        ready_route.get(ready, tags=["service"])
        metrics_route.get(metrics_text, tags=["service"])
        return [time, health_route, ready_route, metrics_route]
