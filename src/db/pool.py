"""The asyncpg pool's lifecycle and the DI factories that hand it to routes."""

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from lihil import Ignore, use

from src.config import Settings
from src.errors import DB_OUTAGE_ERRORS


class DatabaseStartupError(RuntimeError):
    """The database named by the settings cannot be used; the message says why."""


async def open_pool(settings: Settings) -> asyncpg.Pool:
    """Create the pool and prove it works (`SELECT 1`), so a bad DSN fails at start-up."""
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
        )
        await pool.fetchval("SELECT 1")
    except (*DB_OUTAGE_ERRORS, asyncpg.PostgresError, ValueError) as exc:  # type: ignore[misc]
        where = _redact(settings.DATABASE_URL)
        raise DatabaseStartupError(f"cannot use the database at {where}: {exc}") from exc
    return pool


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return dsn
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def pool_not_ready() -> asyncpg.Pool:
    """Declares `asyncpg.Pool` to the DI graph before the lifespan registers the real one.

    LIHIL TRAP (the lifespan must run): routes resolve the pool only after start-up; this
    placeholder lets lihil set up routes and build the OpenAPI schema offline.
    """
    raise RuntimeError("the asyncpg pool is not open: did the app's lifespan run?")


async def get_conn(pool: asyncpg.Pool) -> Ignore[AsyncIterator[asyncpg.Connection]]:
    """One pooled connection for the length of a request, released after the response."""
    async with pool.acquire() as conn:
        yield conn  # type: ignore[misc]  # a PoolConnectionProxy stands in for a Connection


Conn = Annotated[asyncpg.Connection, use(get_conn)]
