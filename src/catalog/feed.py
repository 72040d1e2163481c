"""The catalog feed's reader: one per process, on its own connection (not a pooled one).

Triggers (src/db/migrations) record every committed change to brand, product and SKU rows
in the `catalog_change` outbox, with ids in commit order and tagged with the product and
brands each touches, and NOTIFY `catalog_change` as a wake-up. The feed LISTENs on its
connection, reads the new rows (never the payload) and hands each frame, in id order, to the
subscribers of the topics it belongs to: TOPIC (every change), `product_topic(P)` for its
product, `brand_topic(B)` for each of its brands. Dispatch costs O(tags) per change, however
many topics and peers are subscribed. A slow fallback poll (CATALOG_FEED_POLL_S) covers a
notification that never came, and a lost connection is retried with backoff, then caught up
from the last id read: a lost notification or connection costs latency, never a change.

Each process reads the database itself, so the feed needs no broker: every worker and host
sharing the database delivers every change. A background task prunes changes older than
CATALOG_FEED_RETENTION; `replay` serves `?after=` from what is retained.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from src.catalog import queries
from src.catalog.dependencies import touched
from src.config import Settings
from src.db.pool import Database, is_connection_lost
from src.edge.cache import ResponseCache
from src.errors import DatabaseUnavailable

log = logging.getLogger("catalog.feed")

CHANNEL = "catalog_change"
TOPIC = "catalog"
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)  # then 5 s between attempts
SYNC_TIMEOUT = 5.0

Deliver = Callable[[str], None]


def product_topic(product_id: int) -> str:
    """The topic of one product's changes and its SKUs'."""
    return f"{TOPIC}:product:{product_id}"


def brand_topic(brand_id: int) -> str:
    """The topic of one brand's changes, its products' and their SKUs' (a product moved
    to another brand included, on both brands' topics)."""
    return f"{TOPIC}:brand:{brand_id}"


@dataclass(frozen=True)
class Filter:
    """What a /ws/catalog client follows: every change, or one brand's, or one product's
    (never both: ValueError)."""

    brand_id: int | None = None
    product_id: int | None = None

    def __post_init__(self) -> None:
        if self.brand_id is not None and self.product_id is not None:
            raise ValueError("a feed filters by brand or by product, not both")

    @property
    def topic(self) -> str:
        if self.product_id is not None:
            return product_topic(self.product_id)
        if self.brand_id is not None:
            return brand_topic(self.brand_id)
        return TOPIC


EVERYTHING = Filter()


def topics_of(change: queries.Change) -> Iterator[str]:
    """The topics a change is delivered to: TOPIC, its product's, each of its brands'."""
    yield TOPIC
    if change.product_id is not None:
        yield product_topic(change.product_id)
    for brand_id in dict.fromkeys(change.brand_ids):  # once each, in order
        yield brand_topic(brand_id)


class ChangesPruned(Exception):
    """`after` is older than the retained window; str() is the close reason (4410)."""


class FeedUnavailable(Exception):
    """The feed cannot reach the database right now; str() is the close reason (1013)."""


class CatalogFeed:
    def __init__(self, settings: Settings, cache: ResponseCache | None = None) -> None:
        self.settings = settings
        # The response cache this process serves catalog reads from: each change drops what
        # it touches there before any subscriber hears of it; while the feed is not
        # following the database, the cache serves nothing.
        self.cache = cache
        self.position = 0  # the id of the newest change handed to subscribers
        self.delivered_at = 0.0  # when the listener last caught up (time.time())
        self._subscribers: dict[str, list[Deliver]] = {}  # topic -> its subscribers
        self._gap_listeners: list[Callable[[str], None]] = []  # see `on_gap`
        self._wake = asyncio.Event()
        self._requested = self._completed = 0  # catch-ups asked for by `sync`, and done
        self._progress = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # The registry's source interface (like Broker.subscribe): local subscribers only.
    def subscribe(self, topic: str, deliver: Deliver) -> Callable[[], None]:
        """Hand `deliver` every frame of `topic` (TOPIC, `product_topic`, `brand_topic`)."""
        self._subscribers.setdefault(topic, []).append(deliver)

        def unsubscribe() -> None:
            subscribers = self._subscribers[topic]
            subscribers.remove(deliver)
            if not subscribers:
                del self._subscribers[topic]

        return unsubscribe

    async def start(self, db: Database) -> None:
        conn = await self._connect()
        self.position = await queries.feed_position(conn)
        self.delivered_at = time.time()
        self._tasks = [
            asyncio.create_task(self._listen(conn), name="catalog-feed"),
            asyncio.create_task(self._prune(db), name="catalog-feed-prune"),
        ]
        # Serving starts caught up: the first catch-up connects the response cache, so hits
        # begin with the first requests (else they bypass it until the listener ran once).
        with contextlib.suppress(FeedUnavailable):
            await self.sync()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.settings.DATABASE_URL,
            timeout=self.settings.DB_CONNECT_TIMEOUT,
            server_settings={"application_name": "catalog-feed"},  # to find it in pg_stat_activity
        )

    async def _listen(self, conn: asyncpg.Connection | None) -> None:
        """Follow the outbox for the life of the process, reconnecting as needed."""
        failures = 0
        while True:
            try:
                if conn is None:
                    conn = await self._connect()
                    log.info("catalog feed: connected again; catching up from id %d", self.position)
                failures = 0
                await self._follow(conn)
            except Exception as exc:
                if self.cache is not None:
                    self.cache.disconnect()
                if not (is_connection_lost(exc) or isinstance(exc, DatabaseUnavailable)):
                    log.exception("catalog feed: unexpected error; reconnecting")
                elif failures == 0:
                    log.warning("catalog feed: lost the database (%r); retrying", exc)
                failures += 1
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=1))
                conn = None
            await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1])

    async def _follow(self, conn: asyncpg.Connection) -> None:
        await conn.add_listener(CHANNEL, self._notified)
        conn.add_termination_listener(lambda _: self._wake.set())
        while True:
            self._wake.clear()
            requested = self._requested
            await self._catch_up(conn)
            if self.cache is not None and not self.cache.connected:
                self.cache.connect(self.position)  # caught up: the cache may serve again
            self._completed = requested
            self._progress.set()
            self._progress = asyncio.Event()
            if conn.is_closed():
                raise ConnectionError("the listener's connection closed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.CATALOG_FEED_POLL_S):
                    await self._wake.wait()

    @contextlib.contextmanager
    def on_gap(self, listener: Callable[[str], None]) -> Iterator[None]:
        """While the block runs, call `listener` with a reason when changes are lost to
        this process: pruned before its listener read them (it was cut off from the
        database for longer than CATALOG_FEED_RETENTION). A live client missed them."""
        self._gap_listeners.append(listener)
        try:
            yield
        finally:
            self._gap_listeners.remove(listener)

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _catch_up(self, conn: asyncpg.Connection) -> None:
        while True:
            pruned_through, changes = await queries.changes_after(conn, after=self.position)
            if pruned_through > self.position:  # pruned before it was read: gone for all
                lost = f"changes {self.position + 1}..{pruned_through}"
                log.warning("catalog feed: %s were pruned before the feed read them", lost)
                self.position = pruned_through
                if self.cache is not None:  # what they touched is unknown: forget it all
                    self.cache.forget(pruned_through)
                reason = f"{lost} were pruned before this server read them: reload"
                for listener in tuple(self._gap_listeners):
                    listener(reason)
            cache = self.cache
            for change in changes:
                self.position = change.id
                if cache is not None:
                    tags = touched(change.type, change.key, change.product_id, change.brand_ids)
                    cache.invalidate(change.id, tags)
                self._dispatch(change)
            self.delivered_at = time.time()
            if len(changes) < queries.CHANGE_PAGE:
                return

    def _dispatch(self, change: queries.Change) -> None:
        subscribers = self._subscribers
        if not subscribers:
            return
        for topic in topics_of(change):
            for deliver in tuple(subscribers.get(topic, ())):
                deliver(change.frame)

    async def sync(self) -> None:
        """Return once the listener has read every change committed before this call."""
        self._requested += 1
        target = self._requested
        self._wake.set()
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                while self._completed < target:
                    await self._progress.wait()
        except TimeoutError:
            raise FeedUnavailable(
                "the catalog feed cannot reach the database; try again later"
            ) from None

    async def caught_up(self) -> bool:
        """The response cache's catch-up (`src.edge.CatchUp`): True once every change
        committed before the call is applied; False when the feed cannot reach the database."""
        try:
            await self.sync()
        except FeedUnavailable:
            return False
        return True

    async def replay(
        self, db: Database, *, after: int, through: int, only: Filter = EVERYTHING
    ) -> AsyncIterator[str]:
        """The retained changes with `after` < id <= `through` that `only` lets through, in
        order, page by page (a filtered page reads the matching rows only). `after=0` asks
        for every retained change: what pruning removed before the first page is not asked
        for (a removal between pages still is a gap: ChangesPruned, filtered or not)."""
        everything = after == 0
        while after < through:
            try:
                pruned_through, changes = await queries.changes_after(
                    db,
                    after=after,
                    through=through,
                    product_id=only.product_id,
                    brand_id=only.brand_id,
                )
            except DatabaseUnavailable as exc:
                raise FeedUnavailable(str(exc)) from exc
            if everything:
                everything, after = False, max(after, pruned_through)
            if pruned_through > after:
                raise ChangesPruned(
                    f"after={after} is older than the retained changes (pruned through id "
                    f"{pruned_through}): reload, then reconnect without after"
                )
            for change in changes:
                yield change.frame
                after = change.id
            if len(changes) < queries.CHANGE_PAGE:
                return  # the last page: nothing more through `through`

    async def _prune(self, db: Database) -> None:
        retention = self.settings.CATALOG_FEED_RETENTION
        every = min(max(retention / 10, 1.0), 3600.0)
        while True:
            with contextlib.suppress(DatabaseUnavailable):  # logged; the next round retries
                removed = await queries.prune_changes(db, older_than_s=retention)
                if removed:
                    log.info("catalog feed: pruned %d changes older than %gs", removed, retention)
            await asyncio.sleep(every)


class FeedCollector(Collector):
    """The feed's position and lag, read at scrape time."""

    def __init__(self, feed: CatalogFeed) -> None:
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
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
