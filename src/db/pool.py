"""The database boundary: the asyncpg pool's lifecycle, the `Database` that DI hands to
routes, and the one place asyncpg's connection errors become `DatabaseUnavailable`.

Only a lost, refused or unanswered connection is an outage (503). Anything else asyncpg
raises (an argument it cannot encode, "another operation is in progress", a missing socket
file) is a bug or a misconfiguration and stays an exception: a 500 with its traceback.
"""

import asyncio
import functools
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, ParamSpec, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from lihil import Ignore, use
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from src.config import Settings
from src.errors import DatabaseUnavailable

log = logging.getLogger("catalog.db")
P = ParamSpec("P")
T = TypeVar("T")

# What asyncpg raises when PostgreSQL is unreachable or the connection to it is lost.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,  # no answer within DB_CONNECT_TIMEOUT / DB_COMMAND_TIMEOUT
    socket.gaierror,  # the host name does not resolve (now)
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08: the connection failed or was lost
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: the server was stopped
    asyncpg.CrashShutdownError,  # 57P02: the server crashed
)


def is_connection_lost(exc: BaseException) -> bool:
    """True when `exc` means the database cannot be reached, and nothing else."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    # asyncpg's words for a query on a connection that the server already dropped.
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return True
    # The server's FATAL (terminating connection: a database stopping or restarting) came
    # to an idle connection, which now waits for a ReadyForQuery that never comes; a query
    # sent before asyncpg sees the socket close fails with "cannot switch to state N;
    # another operation (2) is in progress". Under a database kill that was a 500.
    return isinstance(exc, asyncpg.InternalClientError) and "cannot switch to state" in str(exc)


class Outage:
    """What the log says about an outage: its start (a warning with the first error), a
    reminder at most every REMIND_S while it lasts, and its end. Before, every 503 logged a
    warning: about 1,000 lines in 5 s under load, plus the pool's tracebacks."""

    REMIND_S = 10.0

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic time of the first failure
        self.failures = 0
        self._reminded = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self.failures += 1
        if self.since is None:
            self.since, self._reminded = now, now
            log.warning("database unavailable: %r; answering 503 until it is back", exc)
        elif now - self._reminded >= self.REMIND_S:
            self._reminded = now
            log.warning(
                "database still unavailable after %.0f s (%d failed calls so far): %r",
                now - self.since,
                self.failures,
                exc,
            )

    def succeeded(self) -> None:
        if self.since is not None:
            log.info(
                "database back after %.1f s (%d calls failed meanwhile)",
                time.monotonic() - self.since,
                self.failures,
            )
            self.since, self.failures = None, 0


outage = Outage()  # one per process: the database is one


class _PoolLogFilter(logging.Filter):
    """asyncpg's pool logs a traceback each time it fails to reconnect its minimum of
    connections during an outage: counted in the outage instead (other errors pass)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and is_connection_lost(exc):
            outage.failed(exc)
            return False
        return True


def quiet_pool_reconnects() -> None:
    """Installs the filter above on asyncpg's pool logger (idempotent; `open_pool` calls it)."""
    logger = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, _PoolLogFilter) for f in logger.filters):
        logger.addFilter(_PoolLogFilter())


def database_call(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorates a function that talks to PostgreSQL: a lost connection leaves it as
    `DatabaseUnavailable` (the `outage` logs it); every other error passes through
    unchanged. The one translation: every call into asyncpg goes through a function so
    decorated."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            if not is_connection_lost(exc):
                raise
            outage.failed(exc)
            raise DatabaseUnavailable("the database did not answer; try again shortly") from exc
        if outage.since is not None:
            outage.succeeded()
        return result

    return call


@database_call
async def _acquire(pool: asyncpg.Pool) -> "PoolConnectionProxy[asyncpg.Record]":
    return await pool.acquire()


class DatabaseStartupError(RuntimeError):
    """The database named by the settings cannot be used; the message says why."""


async def open_pool(settings: Settings) -> asyncpg.Pool:
    """Create the pool and prove it works (`SELECT 1`), so a bad DSN fails at start-up."""
    quiet_pool_reconnects()
    if not settings.DATABASE_URL:
        raise DatabaseStartupError(
            "DATABASE_URL is not set: run `make run` (it starts an embedded PostgreSQL) "
            "or point DATABASE_URL at a server"
        )
    try:
        pool = await asyncpg.create_pool(
            settings.DATABASE_URL,
            min_size=settings.DB_POOL_MIN,
            max_size=settings.DB_POOL_MAX,
            timeout=settings.DB_CONNECT_TIMEOUT,
            command_timeout=settings.DB_COMMAND_TIMEOUT,
            reset=keep_session,
        )
        await pool.fetchval("SELECT 1")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        # At start-up any of these means "this DSN does not work": say so, without a password.
        where = redact(settings.DATABASE_URL)
        raise DatabaseStartupError(f"cannot use the database at {where}: {exc}") from exc
    return pool


async def keep_session(conn: asyncpg.Connection) -> None:
    """Resets nothing when a connection goes back to the pool.

    asyncpg's default reset sends `RESET ALL; UNLISTEN *; CLOSE ALL; ...` on every release:
    one more round trip per request (12% of a GET /products/{id} in a py-spy profile). Our
    pooled connections never change session state: no SET, no LISTEN (the catalog feed's
    listener has its own connection), only transaction-scoped advisory locks, no cursors
    outside a transaction. asyncpg still rolls back a transaction left open before this.
    """


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return dsn
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


class Database:
    """The pool as routes get it (injected by type): connections go to requests first come,
    first served.

    asyncpg's pool waits on an asyncio.Queue, which lets a newcomer take a connection that
    was just handed to a waiting request; the waiter then queues again at the back. With
    200 concurrent requests on 6 connections that starved some requests: GET /brands had a
    p99 of 1.04 s at a p50 of 71 ms. A fair semaphore (asyncio's serves its waiters in
    order) in front of the pool gives turns in arrival order; the pool never waits.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._turns = asyncio.Semaphore(pool.get_max_size())
        self.waiting = 0  # requests waiting for a connection (asyncio keeps no public count)

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self._turns.locked():
            self.waiting += 1
            try:
                await self._turns.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._turns.acquire()
        try:
            yield
        finally:
            self._turns.release()

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._turn():
            return await self.pool.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self._turn():
            return await self.pool.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self._turn():
            return await self.pool.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self._turn():
            return await self.pool.execute(query, *args)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """One connection, held for the block (a request's writes)."""
        async with self._turn():
            conn = await _acquire(self.pool)
            try:
                yield conn  # type: ignore[misc]  # a PoolConnectionProxy stands in for a Connection
            finally:
                await self._release(conn)

    async def _release(self, conn: "PoolConnectionProxy[asyncpg.Record]") -> None:
        """Give a connection back. Releasing resets it, which fails on a connection the
        server dropped; asyncpg then terminates it (a new one replaces it) and re-raises.
        That happens after the response went out, so raising would only end the client's
        keep-alive connection with "Exception in ASGI application": logged here instead."""
        try:
            await self.pool.release(conn)
        except Exception as exc:
            if is_connection_lost(exc):
                outage.failed(exc)
            else:
                log.warning("a connection failed as it went back to the pool: %r", exc)


class PoolCollector(Collector):
    """catalog_db_pool_connections, read at scrape time (empty before the pool opens)."""

    def __init__(self, database: Callable[[], Database | None]) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        pool = GaugeMetricFamily(
            "catalog_db_pool_connections",
            "Pooled PostgreSQL connections: in use, idle, the maximum, and requests waiting.",
            labels=["state"],
        )
        db = self.database()
        if db is not None:
            size, idle = db.pool.get_size(), db.pool.get_idle_size()
            pool.add_metric(["in_use"], size - idle)
            pool.add_metric(["idle"], idle)
            pool.add_metric(["max"], db.pool.get_max_size())
            pool.add_metric(["waiting"], db.waiting)
        yield pool


@database_call
async def ping(db: Database) -> None:
    """Raises DatabaseUnavailable unless PostgreSQL answers within two seconds."""
    async with asyncio.timeout(2):  # TimeoutError: an outage, like a refused connection
        await db.fetchval("SELECT 1")


def database_not_ready() -> Database:
    """Declares `Database` to the DI graph before the lifespan registers the real one.

    LIHIL TRAP (the lifespan must run): routes resolve the database only after start-up;
    this placeholder lets lihil set up routes and build the OpenAPI schema offline.
    """
    raise RuntimeError("the database pool is not open: did the app's lifespan run?")


async def get_conn(db: Database) -> Ignore[AsyncIterator[asyncpg.Connection]]:
    """One pooled connection for the length of a request, released after the response."""
    async with db.connection() as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, use(get_conn)]

# What query functions take: a connection, the pool, or the Database (each has fetch,
# fetchrow, fetchval and execute).
Executor = asyncpg.Connection | asyncpg.Pool | Database
