"""A feature's wiring in one object the app installs (litestar's plugins,
`ChannelsPlugin.on_app_init`): its routes, its DI providers, its start and stop, its
metrics collectors and the OpenAPI tags of its operations. `src.app.create_app` reads as a
list of components; nothing else knows what a feature holds.
"""

from typing import Any

from prometheus_client.registry import Collector

from src.db.pool import Database


class Component:
    """Override what the feature has; the defaults have nothing."""

    # {"name": ..., "description": ...} for each tag its operations use
    tags: tuple[dict[str, str], ...] = ()

    def routes(self) -> list[Any]:
        """Fresh lihil Routes and WebSocketRoutes (LIHIL TRAP: routes bind to the first
        app set up, so a component builds new ones for each app)."""
        return []

    def providers(self) -> list[tuple[object, type]]:
        """(instance, type) pairs registered as DI singletons: handlers ask for the type."""
        return []

    def collectors(self) -> list[Collector]:
        return []

    async def start(self, db: Database) -> None:
        """Called by the lifespan once the database is open, in component order."""

    async def stop(self) -> None:
        """Called by the lifespan at shutdown, in reverse order."""
