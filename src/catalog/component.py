"""The catalog feature's wiring: its routes, the feed and the batched product reader (DI
providers, started once the database is open) and the feed's metrics."""

from typing import Any

from prometheus_client.registry import Collector

from src.catalog.feed import CatalogFeed, FeedCollector
from src.catalog.readers import CatalogReader
from src.catalog.routes import build_routes
from src.catalog.skus.routes import build_routes as build_sku_routes
from src.component import Component
from src.config import Settings
from src.db.pool import Database
from src.edge.cache import ResponseCache


class Catalog(Component):
    tags = (
        {"name": "brands", "description": "Brands: read, create, rename, delete."},
        {
            "name": "products",
            "description": "Products: read, page through, create, replace, delete.",
        },
        {
            "name": "skus",
            "description": "SKUs: a product's sizes and colors with their price and stock;"
            " read, page through, create, replace, delete, change the stock atomically.",
        },
    )

    def __init__(self, settings: Settings, cache: ResponseCache | None = None) -> None:
        self.feed = CatalogFeed(settings, cache)
        self.reader = CatalogReader()

    def routes(self) -> list[Any]:
        return build_routes() + build_sku_routes()

    def providers(self) -> list[tuple[object, type]]:
        return [(self.feed, CatalogFeed), (self.reader, CatalogReader)]

    def collectors(self) -> list[Collector]:
        return [FeedCollector(self.feed)]

    async def start(self, db: Database) -> None:
        self.reader.start(db)
        await self.feed.start(db)

    async def stop(self) -> None:
        await self.feed.stop()
