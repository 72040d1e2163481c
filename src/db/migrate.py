"""Versioned schema migrations: alembic, run over SQLAlchemy's asyncpg dialect (no second
database driver), each version a plain-SQL file in `migrations/versions/` beside the
alembic script that names it.

Every start-up runs `upgrade` in one transaction that first takes the set-up advisory lock:
with several workers starting at once one applies the pending versions and the others wait
for the lock, then find nothing pending. Alembic records the version in `alembic_version`.
A database made before versions were recorded has no such row: version 0001 is the schema
those releases applied on every start, idempotent, so applying it there changes nothing and
records 0001; the later versions then run as on any database. A database whose recorded
version this code does not know (made by a newer release) is refused: SchemaTooNew.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import asyncpg
from alembic import command, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from src.db.migrations import VERSIONS

MIGRATIONS = VERSIONS.parent
# Any constant works; it only has to be the same in every process sharing the database.
SETUP_LOCK_ID = 0x6C696869


class SchemaTooNew(Exception):
    """The database's schema version is unknown to this code; str() says both versions."""


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # the version recorded in the database (None: none recorded)
    head: str  # the newest version this code knows
    pending: list[str]  # what an upgrade would apply, oldest first
    versions: list[tuple[str, str]]  # every version this code knows: (id, what it does)


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@asynccontextmanager
async def setup_transaction(dsn: str) -> AsyncIterator[AsyncConnection]:
    """A transaction on a connection of its own, holding the set-up lock until it ends."""
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=partial(asyncpg.connect, dsn), poolclass=NullPool
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SETUP_LOCK_ID})
            yield conn
    finally:
        await engine.dispose()


def status(conn: Connection) -> SchemaStatus:
    """Where the database stands against this code's versions (run_sync on a connection)."""
    script = ScriptDirectory.from_config(_config())
    head = script.get_current_head()
    assert head is not None  # there is at least 0001
    known = list(reversed(list(script.walk_revisions())))  # oldest first
    versions = [(r.revision, (r.doc or "").splitlines()[0] if r.doc else "") for r in known]
    ids = [r.revision for r in known]
    current = MigrationContext.configure(conn).get_current_revision()
    if current is not None and current not in ids:
        raise SchemaTooNew(
            f"the database's schema is at version {current}, newer than this code's {head}: "
            "it was made by a newer release; run that release (or a newer one) against it"
        )
    pending = ids[ids.index(current) + 1 :] if current is not None else ids
    return SchemaStatus(current, head, pending, versions)


def upgrade(conn: Connection) -> list[str]:
    """Apply every pending version in the caller's transaction; returns their ids."""
    pending = status(conn).pending
    if pending:
        config = _config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return pending


def run_sql_file(script: str) -> None:
    """Run the .sql file named like the migration script `script` (its __file__), whole.

    SQLAlchemy's asyncpg dialect prepares every statement, and a prepared statement holds
    one command; a migration's file holds many (and functions with `;` in their bodies).
    So the file goes to the asyncpg connection underneath, in the same transaction, as one
    simple-protocol script."""
    sql = Path(script).with_suffix(".sql").read_text()
    dbapi = op.get_bind().connection.dbapi_connection
    assert dbapi is not None  # a connection in use has one
    driver = dbapi.driver_connection
    await_only(driver.execute(sql))
