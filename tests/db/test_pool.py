"""The database boundary: which asyncpg errors are an outage (503), and which stay bugs."""

import asyncio
import contextlib
import socket

import asyncpg
import pytest

from src.catalog import queries
from src.db.pool import Database, database_call, is_connection_lost, keep_session, redact
from src.errors import DatabaseUnavailable


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (TimeoutError(), True),
        (socket.gaierror(-2, "Name or service not known"), True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), True),
        (asyncpg.AdminShutdownError("terminating connection"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.InterfaceError("cannot perform operation: connection is closed"), True),
        (
            asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            ),
            True,
        ),
        # Bugs and misconfigurations: a 500 with a traceback, never a 503.
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            False,
        ),
        (asyncpg.DataError("invalid input for query argument $1"), False),
        (asyncpg.UndefinedTableError("relation does not exist"), False),
        (FileNotFoundError(2, "No such file or directory"), False),
        (PermissionError(13, "Permission denied"), False),
        (ValueError("bad"), False),
    ],
)
def test_only_connection_errors_are_an_outage(exc: Exception, lost: bool) -> None:
    """A lost, refused or unanswered connection is an outage; nothing else is."""
    assert is_connection_lost(exc) is lost


async def test_boundary_translates_an_outage_and_passes_everything_else() -> None:
    """DatabaseUnavailable (chained to the cause) for an outage; other errors unchanged."""

    @database_call
    async def failing(exc: Exception) -> None:
        raise exc

    with pytest.raises(DatabaseUnavailable) as raised:
        await failing(ConnectionRefusedError(111, "refused"))
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    assert "refused" not in raised.value.detail  # the client reads a sentence; the log, why
    with pytest.raises(asyncpg.DataError):
        await failing(asyncpg.DataError("invalid input"))


async def test_query_on_a_closed_connection_is_unavailable(database_url: str) -> None:
    """A connection the server dropped: the query function raises DatabaseUnavailable."""
    conn = await asyncpg.connect(database_url)
    await conn.close()
    with pytest.raises(DatabaseUnavailable):
        await queries.brand_json(conn, brand_id=1)


async def test_argument_asyncpg_cannot_encode_stays_a_bug(database_url: str) -> None:
    """An id outside PostgreSQL's int range reaching SQL is our bug: DataError, not a 503."""
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.DataError):
            await queries.brand_json(conn, brand_id=2**40)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/catalog", "postgresql://app:***@db:5432/catalog"),
        ("postgresql://app:p@ss@db/catalog", "postgresql://app:***@db/catalog"),
        ("postgresql://app@db/catalog", "postgresql://app@db/catalog"),
        ("postgresql://db/catalog", "postgresql://db/catalog"),
        ("postgresql:///catalog?host=/run/pg", "postgresql:///catalog?host=/run/pg"),
    ],
)
def test_redact_hides_only_the_password(dsn: str, shown: str) -> None:
    """Messages and logs name the database without its password."""
    assert redact(dsn) == shown


async def test_a_newcomer_cannot_take_the_connection_a_waiter_is_next_for(
    database_url: str,
) -> None:
    """Pool of one: while a request holds it, another waits; a newcomer that runs just as
    it is released must queue behind the waiter. (asyncpg's queue alone hands it to the
    newcomer and sends the waiter to the back: under load some requests starved.)"""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1, reset=keep_session)
    db = Database(pool)
    served: list[str] = []

    async def query(name: str) -> None:
        await db.fetchval("SELECT 1")
        served.append(name)

    try:
        async with db.connection():
            waiter = asyncio.create_task(query("waiter"))
            for _ in range(3):  # scheduling steps (not a wait): the waiter reaches its queue
                await asyncio.sleep(0)
            # The newcomer's first step runs after the release hands the connection on.
            newcomer: list[asyncio.Task[None]] = []
            asyncio.get_running_loop().call_soon(
                lambda: newcomer.append(asyncio.create_task(query("newcomer")))
            )
        await asyncio.wait_for(asyncio.gather(waiter, *newcomer), 10)
    finally:
        await pool.close()
    assert served == ["waiter", "newcomer"]


async def test_a_connection_the_server_dropped_is_an_outage_then_replaced(
    database_url: str, sql: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """The server ends a connection a request holds (after its query: the response is out),
    as PostgreSQL stopping or an operator does.
    - Giving it back must not raise: an exception there ended the client's keep-alive
      connection with "Exception in ASGI application".
    - Its FATAL may race the next query on it, which asyncpg then fails with
      InternalClientError "cannot switch to state 12; another operation (2) is in progress"
      (seen as a 500 under a database kill). That is a lost connection: a 503.
    - The call after that gets a new connection."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1, reset=keep_session)
    db = Database(pool)
    try:
        for _ in range(20):  # the FATAL and the query race: repeated, one wins often
            async with db.connection() as conn:
                await conn.fetchval("SELECT 1")
                await terminate(sql, conn.get_server_pid())
            with contextlib.suppress(DatabaseUnavailable):  # the loss, as an outage
                await queries.brand_json(db, brand_id=1)
            assert await queries.brand_json(db, brand_id=1) is not None
    finally:
        await pool.close()
    assert "Traceback" not in caplog.text


async def terminate(admin: asyncpg.Connection, pid: int) -> None:
    """Signal a backend to end (as a stopping server does), without waiting for it: its
    FATAL message reaches the client while the client may already be sending a query."""
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
