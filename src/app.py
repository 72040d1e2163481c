"""The app factory: a list of components on the infrastructure. Importing it builds nothing;
`src.main` builds the app uvicorn serves."""

import asyncio
import gc
import logging
from collections.abc import AsyncGenerator
from typing import Any

from lihil import Lihil, WebSocketRoute
from lihil.config import AppConfig, OASConfig

from src.broker import build_broker
from src.broker.base import Broker
from src.broker.metrics import BrokerMetrics
from src.catalog.component import Catalog
from src.compat.lihil import patch_lihil, without_builtin_pages
from src.compat.uvicorn import quiet_uvicorn_log
from src.component import Component
from src.config import Settings, load_settings
from src.db.pool import Database, PoolCollector, database_not_ready, open_pool
from src.db.setup import prepare_database
from src.edge import Edge
from src.edge.cache import CacheCollector, ResponseCache
from src.edge.openapi import openapi_document
from src.edge.routes import RouteTable
from src.errors import install_problem_solver
from src.metrics import Metrics
from src.realtime.asyncapi import build_asyncapi
from src.realtime.component import Realtime
from src.service import Service
from src.web.component import Web

log = logging.getLogger("catalog")
VERSION = "0.1.0"


# Garbage collection of a serving process. Every WebSocket connection holds a few hundred
# container objects, and with CPython's default thresholds (700, 10, 10) the collector kept
# re-scanning them: a storm of 5,000 handshakes took 6.1 s with /health at 748 ms p99.
# Freezing what start-up built took that to 4.6 s and 481 ms. Larger thresholds help only
# while the young generations stay small. (50,000, 20, 100) made 3.1 s and 97 ms at 5,000,
# but at 10,000 its gen-1 collections scanned a million objects: 600-800 ms pauses.
# (2,000, 10, 1,000) keeps each young collection under ~40 ms at 10,000 clients (echo storm
# /health p99 88-107 ms) and leaves full collections rare: about every 20 million
# allocations, each pausing in proportion to the live connections (docs/BENCHMARKS.md).
GC_THRESHOLDS = (2_000, 10, 1_000)


def tune_gc() -> None:
    """For the served process, once everything is imported and built: what exists now
    lives as long as the process, so the collector stops traversing it (freeze), and
    collections run less often. Not for test processes, which build many apps."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(settings: Settings | None = None) -> Edge:
    return _build(settings or load_settings())[0]


def contract_documents(settings: Settings) -> dict[str, Any]:
    """The OpenAPI and AsyncAPI documents of an app with these settings (offline: no
    server, no database), as /openapi and /asyncapi serve them."""
    _, web = _build(settings)
    return {"openapi": web.openapi(), "asyncapi": web.asyncapi()}


def _build(settings: Settings) -> tuple[Edge, Web]:
    patch_lihil()
    install_problem_solver()
    quiet_uvicorn_log()
    broker = build_broker(settings)
    # Catalog reads served from memory, kept coherent by the catalog feed (API.md "Reads at
    # memory speed"): the edge answers from it, the feed drops what each change touches.
    cache = ResponseCache(settings.CACHE_MAX_ENTRIES) if settings.CACHE == "on" else None
    app: Lihil | None = None

    def openapi() -> Any:
        assert app is not None
        return openapi_document(app, [t for c in components for t in c.tags])

    def asyncapi() -> Any:
        return build_asyncapi(
            VERSION,
            max_session_users=settings.MAX_SESSION_USERS,
            default_session_users=settings.DEFAULT_SESSION_USERS,
        )

    web = Web(openapi, asyncapi)
    catalog = Catalog(settings, cache)
    components: list[Component] = [Service(), catalog, Realtime(settings, broker), web]
    database: Database | None = None
    metrics = Metrics(
        [
            PoolCollector(lambda: database),
            BrokerMetrics(broker),
            *([CacheCollector(cache)] if cache is not None else []),
            *(collector for c in components for collector in c.collectors()),
        ]
    )

    async def lifespan(app: Lihil) -> AsyncGenerator[None, None]:
        """Owns every long-lived resource; closes them in reverse order."""
        nonlocal database
        pool = await open_pool(settings)
        try:
            dsn = settings.DATABASE_URL or ""  # open_pool refused an empty one
            prepared = await prepare_database(dsn, seed=settings.SEED_DEMO_DATA)
            if prepared.applied:
                log.info("applied schema versions %s", ", ".join(prepared.applied))
            if prepared.seeded:
                log.info("loaded the demo catalog (100 brands, 1,000 products, 100,000 SKUs)")
            database = Database(pool)
            app.graph.register_singleton(database, Database)
            await broker.start()
            started: list[Component] = []
            try:
                for component in components:
                    await component.start(database)
                    started.append(component)
                yield
            finally:
                for component in reversed(started):
                    await component.stop()
                await broker.stop()
        finally:
            await asyncio.wait_for(pool.close(), timeout=10)

    routes = [route for component in components for route in component.routes()]
    app = Lihil(
        *routes,
        app_config=AppConfig(VERSION=VERSION, oas=OASConfig(TITLE="Catalog API")),
        lifespan=lifespan,
    )
    without_builtin_pages(app)
    app.graph.register_singleton(settings, Settings)
    app.graph.register_singleton(broker, Broker)
    app.graph.register_singleton(metrics, Metrics)
    for component in components:
        for instance, kind in component.providers():
            app.graph.register_singleton(instance, kind)
    app.graph.node(database_not_ready)
    # The edge is the outermost app: it calls the routes itself and hands lihil the
    # lifespan only (as lihil's middleware it cost a wrapper and a closure per request).
    http = [r for r in routes if not isinstance(r, WebSocketRoute)]
    websocket = [r for r in routes if isinstance(r, WebSocketRoute)]
    table = RouteTable(http, websocket)
    # A GET that names a position the cache has not reached has the feed read the database.
    return Edge(app, table, settings, metrics.observe, cache, catalog.feed.caught_up), web
