"""The realtime feature's wiring: the WebSocket routes, the registry of open sockets (a DI
provider), 1001 to every client at shutdown, and the sockets' metrics."""

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from src.component import Component
from src.config import Settings
from src.db.pool import Database
from src.errors import Close
from src.realtime.broker import Broker
from src.realtime.fanout import Registry
from src.realtime.routes import build_ws_routes
from src.realtime.shutdown import close_peers_on_signals


class Realtime(Component):
    def __init__(self, settings: Settings, broker: Broker) -> None:
        self.broker = broker
        self.registry = Registry(
            broker,
            window_ms=settings.COUNTER_WINDOW_MS,
            queue_limit=settings.WS_SEND_QUEUE,
            max_message_bytes=settings.WS_MAX_MESSAGE_BYTES,
            max_messages_per_s=settings.WS_MAX_MESSAGES_PER_S,
        )

    def routes(self) -> list[Any]:
        return build_ws_routes()

    def providers(self) -> list[tuple[object, type]]:
        return [(self.registry, Registry)]

    def collectors(self) -> list[Collector]:
        return [_SocketsCollector(self.registry, self.broker)]

    async def start(self, db: Database) -> None:
        close_peers_on_signals(self.registry)

    async def stop(self) -> None:
        self.registry.close_all(Close.GOING_AWAY, "server shutting down")


class _SocketsCollector(Collector):
    """Open sockets, frames sent and closes by endpoint; whether the broker answers."""

    def __init__(self, registry: Registry, broker: Broker) -> None:
        self.registry, self.broker = registry, broker

    def collect(self) -> Iterator[Metric]:
        peers = self.registry.peers()
        open_by = Counter(p.endpoint for p in peers)
        sent_by = Counter(self.registry.sent_by_gone)
        for peer in peers:
            sent_by[peer.endpoint] += peer.sent
        connections = GaugeMetricFamily(
            "catalog_ws_connections", "Open WebSocket connections.", labels=["endpoint"]
        )
        for endpoint, count in sorted(open_by.items()):
            connections.add_metric([endpoint], count)
        yield connections
        sent = CounterMetricFamily(
            "catalog_ws_frames_sent", "Frames sent to WebSocket clients.", labels=["endpoint"]
        )
        for endpoint, count in sorted(sent_by.items()):
            sent.add_metric([endpoint], count)
        yield sent
        closes = CounterMetricFamily(
            "catalog_ws_closes",
            "WebSocket connections ended, by close code (1006: dropped without a close).",
            labels=["endpoint", "code"],
        )
        for (endpoint, code), count in sorted(self.registry.closes.items()):
            closes.add_metric([endpoint, str(code)], count)
        yield closes
        up = bool(getattr(self.broker, "available", True))
        yield GaugeMetricFamily("catalog_broker_up", "1 while the broker answers.", value=up)
