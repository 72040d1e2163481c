"""The app factory. Importing it builds nothing; `src.main` builds the app uvicorn serves."""

import asyncio
import gc
import logging
from collections.abc import AsyncGenerator
from functools import partial

from lihil import Lihil
from lihil.asgi import ASGIRoute
from lihil.config import AppConfig, OASConfig

from src import errors, lihil_patches  # noqa: F401  (registers the problem solver; patches)
from src.broker import build_broker
from src.broker.base import Broker
from src.broker.metrics import BrokerMetrics
from src.catalog.feed import CatalogFeed
from src.catalog.routes import build_routes
from src.config import Settings, load_settings
from src.db.pool import Database, database_not_ready, open_pool
from src.db.setup import prepare_database
from src.edge import RouteTable, edge_middlewares, quiet_denied_handshakes
from src.metrics import Metrics
from src.openapi import openapi_document
from src.realtime.asyncapi import build_asyncapi
from src.realtime.protocol import Close
from src.realtime.routes import build_ws_routes
from src.realtime.shutdown import close_peers_on_signals
from src.realtime.topics import Registry
from src.web.routes import build_page_routes

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


def _no_builtin_pages() -> tuple[ASGIRoute, ...]:
    return ()


def create_app(settings: Settings | None = None) -> Lihil:
    settings = settings or load_settings()
    broker = build_broker(settings)
    feed = CatalogFeed(settings)
    registry = Registry(
        broker,
        window_ms=settings.COUNTER_WINDOW_MS,
        queue_limit=settings.WS_SEND_QUEUE,
        max_message_bytes=settings.WS_MAX_MESSAGE_BYTES,
        max_messages_per_s=settings.WS_MAX_MESSAGES_PER_S,
    )

    async def lifespan(app: Lihil) -> AsyncGenerator[None, None]:
        """Owns every long-lived resource; closes them in reverse order."""
        pool = await open_pool(settings)
        try:
            async with pool.acquire() as conn:
                if await prepare_database(conn, seed=settings.SEED_DEMO_DATA):  # type: ignore[arg-type]
                    log.info("loaded the demo catalog (100 brands, 1,000 products, 100,000 SKUs)")
            db = Database(pool)
            app.graph.register_singleton(db, Database)
            metrics.database = db
            await broker.start()
            await feed.start(db)
            try:
                close_peers_on_signals(registry)
                yield
            finally:
                registry.close_all(Close.GOING_AWAY, "server shutting down")
                await feed.stop()
                await broker.stop()
        finally:
            await asyncio.wait_for(pool.close(), timeout=10)

    metrics = Metrics(feed, [registry.metrics, BrokerMetrics(broker)])
    quiet_denied_handshakes()
    routes = build_routes()
    ws_routes = build_ws_routes()

    table = RouteTable(routes, ws_routes)
    app = Lihil(
        *routes,
        *ws_routes,
        app_config=AppConfig(
            VERSION=VERSION,
            oas=OASConfig(TITLE="Catalog API"),
        ),
        lifespan=lifespan,
        middlewares=edge_middlewares(table, settings, metrics),
    )
    # LIHIL TRAP (the docs page loads Swagger UI from a CDN): at start-up lihil appends its
    # own /openapi, /docs (Swagger UI from cdn.jsdelivr.net) and /problems (jQuery and
    # Bootstrap from CDNs, describing lihil's `type_` problems) after our routes, and has no
    # switch to leave them out (`Lihil` is final). None of them is served: src.web.routes
    # serves our /openapi and an offline /docs; there is no /problems page.
    app._generate_builtin_routes = _no_builtin_pages  # type: ignore[method-assign]
    app.graph.register_singleton(settings, Settings)
    app.graph.register_singleton(broker, Broker)
    app.graph.register_singleton(registry, Registry)
    app.graph.register_singleton(feed, CatalogFeed)
    app.graph.register_singleton(metrics, Metrics)
    app.graph.node(database_not_ready)
    asyncapi = partial(
        build_asyncapi,
        VERSION,
        max_session_users=settings.MAX_SESSION_USERS,
        default_session_users=settings.DEFAULT_SESSION_USERS,
    )
    pages = build_page_routes(partial(openapi_document, app), asyncapi)
    app.include(*pages)
    table.http.extend(pages)  # the edge and the metrics know the pages' routes too
    return app
