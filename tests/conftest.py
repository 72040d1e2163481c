"""Shared fixtures: a real PostgreSQL, a fresh database per test, the app under TestClient,
a live server per test and one shared by the session.

The server is an embedded one in a temporary folder, or the one named by
TEST_DATABASE_URL when set (it must allow CREATE DATABASE). The demo catalog is loaded
once into a template database; each test that asks for `database_url` gets its own copy,
so no test sees another's writes. The copies are made one test ahead, on a thread of their
own, so a test does not wait for CREATE DATABASE.

`live_server` is a uvicorn of the test's own; `shared_server` is one uvicorn for the whole
session, for tests that need no isolation (its docstring says which those are).
"""

import asyncio
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from lihil.vendors import TestClient

from src.app import create_app
from src.config import Settings
from src.db.embedded import EmbeddedPostgres
from src.db.setup import prepare_database
from tests import redisd
from tests.helpers import AUTH, LiveServer, make_settings, start_live_server, with_database

TEMPLATE = "catalog_template"


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` to its end on a thread of its own: sync Playwright marks its event loop as
    running on the main thread while a browser lives (tests/web shares one), and
    asyncio.run() refuses to start there."""
    with ThreadPoolExecutor(1, thread_name_prefix="conftest-run") as thread:
        thread.submit(asyncio.run, coro).result()


async def admin_sql(dsn: str, sql: str, *args: object) -> None:
    """Run one statement on a connection of its own, as another program would."""
    async with connected(dsn) as conn:
        await conn.execute(sql, *args)


class DatabaseCopies:
    """Copies of the template database, each made while the test before runs: `take()`
    returns a copy no test has used and starts making the next one, on a thread of its own
    (CREATE DATABASE takes about 0.1 s, and over 200 tests ask for a copy)."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="database-copies")
        self._next: Future[str] | None = None

    def _make(self) -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        asyncio.run(admin_sql(self.admin_dsn, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        return name

    def take(self) -> str:
        """The name of a fresh copy of the demo catalog, the caller's to drop."""
        made = self._next or self._thread.submit(self._make)
        self._next = self._thread.submit(self._make)
        return made.result()

    def drop(self, name: str) -> None:
        run(admin_sql(self.admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    @contextmanager
    def copy(self) -> Iterator[str]:
        """The URL of a fresh copy of the demo catalog, dropped after the block."""
        name = self.take()
        try:
            yield with_database(self.admin_dsn, name)
        finally:
            self.drop(name)

    def close(self) -> None:
        """Drop the copy made ahead for a test that never came."""
        try:
            if self._next is not None:
                self.drop(self._next.result())
        finally:
            self._thread.shutdown()


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A DSN of a PostgreSQL server the suite may create databases on.

    Each test session initialises its own throwaway cluster (about a second), so two
    sessions running at once never stop each other's server.
    """
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    # Not pytest's tmp_path: pytest prunes old base folders, a concurrent session's included.
    folder = Path(tempfile.mkdtemp(prefix="catalog-test-pg-"))
    server = EmbeddedPostgres(folder / "data", fast=True)
    try:
        yield server.start()
    finally:
        server.destroy()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A folder for a test's own PostgreSQL. Not pytest's tmp_path: a concurrent pytest
    session prunes and re-creates /tmp/pytest-of-<user> (mode 0700) under it, and the
    server's own user then loses its way to the data folder (initdb: Permission denied)."""
    folder = Path(tempfile.mkdtemp(prefix="catalog-test-own-pg-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_dsn(admin_dsn: str) -> str:
    """The demo catalog, loaded once per session into a template database."""

    async def build() -> None:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            await admin.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await admin.close()
        await prepare_database(with_database(admin_dsn, TEMPLATE), seed=True)

    run(build())
    return with_database(admin_dsn, TEMPLATE)


@pytest.fixture(scope="session")
def database_copies(admin_dsn: str, template_dsn: str) -> Iterator[DatabaseCopies]:
    copies = DatabaseCopies(admin_dsn)
    try:
        yield copies
    finally:
        copies.close()


@pytest.fixture
def database_url(database_copies: DatabaseCopies) -> Iterator[str]:
    """A private copy of the demo catalog for one test, dropped afterwards."""
    with database_copies.copy() as url:
        yield url


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test's database, as another program would use."""
    async with connected(database_url) as conn:
        yield conn


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(DATABASE_URL=database_url, DB_POOL_MAX=4)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app on its own database, lifespan run (LIHIL TRAP: the lifespan must run)."""
    with TestClient(create_app(settings), headers=AUTH) as c:  # writes carry a valid token
        yield c


@pytest.fixture
def live_server(database_url: str) -> Iterator[LiveServer]:
    """uvicorn serving the app on its own database; stopped by PID afterwards."""
    process, port = start_live_server(database_url)
    try:
        yield LiveServer(process, port)
    finally:
        process.stop(signal.SIGTERM)


@pytest.fixture(scope="session")
def shared_database_url(database_copies: DatabaseCopies) -> Iterator[str]:
    """The copy of the demo catalog that `shared_server` serves, dropped after the session."""
    with database_copies.copy() as url:
        yield url


@pytest.fixture(scope="session")
def shared_server(shared_database_url: str) -> Iterator[LiveServer]:
    """One uvicorn for the whole session (as `live_server` starts it), on a database of its
    own; stopped by PID after the last test.

    Starting a server and its database costs a second; tests that need no isolation share
    this one. A test may use it when its outcome does not depend on what other tests did
    here before it, and it leaves nothing that changes another's:
    - it reads, or writes only rows it creates or demo rows no other test here reads (name
      them in its docstring), and adds or removes no brand;
    - its room names are its own, and it counts nothing global (/counter users, metrics
      totals, log lines: its `process` output holds every test's lines);
    - it neither stops the server nor changes its settings, and prunes no changes;
    - on /ws/catalog it waits for its own changes, not for the next frames.
    Anything else takes `live_server`.
    """
    process, port = start_live_server(shared_database_url)
    try:
        yield LiveServer(process, port)
    finally:
        process.stop(signal.SIGTERM)


@pytest.fixture
async def shared_sql(shared_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to `shared_server`'s database, as another program would use."""
    async with connected(shared_database_url) as conn:
        yield conn


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis for the session (REDIS_URL when set); tests isolate themselves in it by key
    prefix, or start their own server (`tests.redisd.redis_server`) when they stop it."""
    with redisd.redis_url() as url:
        yield url
