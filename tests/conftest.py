"""Shared fixtures: a real PostgreSQL, a fresh database per test, the app under TestClient.

The server is an embedded one in a temporary folder, or the one named by
TEST_DATABASE_URL when set (it must allow CREATE DATABASE). The demo catalog is loaded
once into a template database; each test that asks for `database_url` gets its own copy,
so no test sees another's writes.
"""

import asyncio
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
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
    return asyncio.run(coro)


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
        conn = await asyncpg.connect(with_database(admin_dsn, TEMPLATE))
        try:
            await prepare_database(conn, seed=True)
        finally:
            await conn.close()

    run(build())
    return with_database(admin_dsn, TEMPLATE)


@pytest.fixture
def database_url(admin_dsn: str, template_dsn: str) -> Iterator[str]:
    """A private copy of the demo catalog for one test, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run(admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    try:
        yield with_database(admin_dsn, name)
    finally:
        run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test's database, as another program would use."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


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
def redis_url() -> Iterator[str]:
    """A Redis for the session (REDIS_URL when set); tests isolate themselves in it by key
    prefix, or start their own server (`tests.redisd.redis_server`) when they stop it."""
    with redisd.redis_url() as url:
        yield url
