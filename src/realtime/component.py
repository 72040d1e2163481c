"""The realtime feature's wiring: the WebSocket routes, the registry of open sockets (a DI
provider), 1001 to every client at shutdown, and the sockets' metrics."""

from typing import Any

from prometheus_client.registry import Collector

from src.broker.base import Broker
from src.component import Component
from src.config import Settings
from src.db.pool import Database
from src.errors import Close
from src.realtime.routes import build_ws_routes
from src.realtime.shutdown import close_peers_on_signals
from src.realtime.topics import Registry


class Realtime(Component):
    def __init__(self, settings: Settings, broker: Broker) -> None:
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
        return [self.registry.metrics]

    async def start(self, db: Database) -> None:
        close_peers_on_signals(self.registry)

    async def stop(self) -> None:
        self.registry.close_all(Close.GOING_AWAY, "server shutting down")
