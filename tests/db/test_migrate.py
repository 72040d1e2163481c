"""Versioned migrations: a database made by the release before versions (its schema applied
as it did, with rows and feed changes in it) is recognized and upgraded with nothing lost;
a newer one is refused; the script shows and applies versions."""

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from src.config import PROJECT_ROOT
from src.db.migrate import MIGRATIONS
from src.db.migrations import newest_version
from src.db.pool import DatabaseStartupError
from src.db.setup import prepare_database
from tests.conftest import admin_sql
from tests.helpers import with_database

# What the releases before versioned migrations applied on every start-up, byte for byte.
NEWEST = newest_version()
EVERY_VERSION = [f"{i:04d}" for i in range(1, int(NEWEST) + 1)]  # the chain test checks it
BEFORE_VERSIONS_SQL = (MIGRATIONS / "versions" / "0001_baseline.sql").read_text()


@pytest.fixture
async def empty_database(admin_dsn: str) -> AsyncIterator[str]:
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    await admin_sql(admin_dsn, f"CREATE DATABASE {name}")
    try:
        yield with_database(admin_dsn, name)
    finally:
        await admin_sql(admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def made_by_the_release_before_versions(dsn: str) -> None:
    """As that release left a database: its schema, the book's rows (loaded with the
    triggers on, as it did) and changes made over its life, some pruned."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(BEFORE_VERSIONS_SQL)
        await conn.execute(
            """
            INSERT INTO brand (brand_name) SELECT 'Brand ' || i FROM generate_series(1, 5) i;
            INSERT INTO product (product_name, brand_id)
                SELECT 'Product ' || i, 1 + i % 5 FROM generate_series(1, 40) i;
            INSERT INTO product_size (product_size_name) VALUES ('Small'), ('Large');
            INSERT INTO product_color (product_color_name) VALUES ('Blue'), ('Black');
            INSERT INTO sku (product_id, product_size_id, product_color_id)
                SELECT 1 + i % 40, 1 + i % 2, 1 + i % 2 FROM generate_series(1, 200) i;
            UPDATE product SET product_name = 'Renamed' WHERE product_id = 3;
            UPDATE product SET brand_id = 2 WHERE product_id = 4;
            DELETE FROM product WHERE product_id = 5;
            UPDATE brand SET brand_name = 'Acme' WHERE brand_id = 1;
            DELETE FROM catalog_change WHERE id <= 10;
            UPDATE catalog_feed_state SET pruned_through = 10;
            """
        )
    finally:
        await conn.close()


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {
        "brand": [tuple(r) for r in await conn.fetch("SELECT * FROM brand ORDER BY 1")],
        "product": [tuple(r) for r in await conn.fetch("SELECT * FROM product ORDER BY 1")],
        "sku": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT sku_id, product_id, product_size_id, product_color_id FROM sku ORDER BY 1"
            )
        ],
        "change": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT id, type, data::text, committed_at FROM catalog_change ORDER BY id"
            )
        ],
        "state": [tuple(r) for r in await conn.fetch("SELECT * FROM catalog_feed_state")],
    }


async def test_a_database_from_before_versions_upgrades_in_place_with_nothing_lost(
    empty_database: str,
) -> None:
    await made_by_the_release_before_versions(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        before = await snapshot(conn)
        assert len(before["change"]) == 5 + 40 + 4 - 10  # SKUs recorded nothing then

        assert await prepare_database(empty_database, seed=True) == (
            EVERY_VERSION,
            False,
        )

        assert await snapshot(conn) == before  # every row and every retained change
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == NEWEST
        # The new columns are filled: deterministic prices and stock, within their checks.
        skus = await conn.fetch("SELECT price, currency, stock FROM sku ORDER BY sku_id")
        assert all(r["price"] > 0 and r["currency"] == "EUR" and r["stock"] >= 0 for r in skus)
        assert len({r["price"] for r in skus}) > 100
        # 0003: every retained change's brands are in the feed's brand index.
        indexed = await conn.fetch("SELECT brand_id, id FROM catalog_change_brand ORDER BY 2, 1")
        tagged = await conn.fetch(
            "SELECT b, id FROM catalog_change, unnest(brand_ids) b ORDER BY 2, 1"
        )
        assert [tuple(r) for r in indexed] == [tuple(r) for r in tagged] != []
        # Retained changes are tagged with what they touch, so filtered replay finds them.
        tags = {
            r["type"] + str(r["data_id"]): (r["product_id"], r["brand_ids"])
            for r in await conn.fetch(
                "SELECT type, coalesce(data->>'product_id', data->>'brand_id') AS data_id,"
                " product_id, brand_ids FROM catalog_change"
            )
        }
        assert tags["product.updated4"] == (4, [2])
        assert tags["product.deleted5"] == (5, [])  # its brand was never recorded
        assert tags["brand.updated1"] == (None, [1])
        # And a change after the upgrade records SKUs, with their product and brand.
        await conn.execute("UPDATE sku SET stock = stock + 1 WHERE sku_id = 1")
        change: Any = await conn.fetchrow(
            "SELECT type, data, product_id, brand_ids FROM catalog_change ORDER BY id DESC LIMIT 1"
        )
        product: Any = await conn.fetchrow(
            "SELECT product_id, brand_id FROM sku JOIN product USING (product_id) WHERE sku_id = 1"
        )
        assert (change["type"], change["product_id"], change["brand_ids"]) == (
            "sku.updated",
            product["product_id"],
            [product["brand_id"]],
        )
        # Again: nothing pending, nothing changed.
        assert await prepare_database(empty_database, seed=True) == ([], False)
    finally:
        await conn.close()


async def test_an_empty_database_gets_every_version_and_the_demo(empty_database: str) -> None:
    prepared = await prepare_database(empty_database, seed=True)
    assert prepared == (EVERY_VERSION, True)
    conn = await asyncpg.connect(empty_database)
    try:
        # The demo is the starting state: loading it recorded no change.
        assert await conn.fetchval("SELECT count(*) FROM catalog_change") == 0
        assert await conn.fetchval("SELECT count(*) FROM sku WHERE stock = 0") > 0
    finally:
        await conn.close()


async def test_a_database_newer_than_the_code_is_refused_naming_both_versions(
    empty_database: str,
) -> None:
    await prepare_database(empty_database, seed=False)
    await admin_sql(empty_database, "UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(DatabaseStartupError) as refused:
        await prepare_database(empty_database, seed=True)
    assert f"version 0099, newer than this code's {NEWEST}" in str(refused.value)
    conn = await asyncpg.connect(empty_database)
    try:  # and nothing was loaded into it
        assert await conn.fetchval("SELECT count(*) FROM brand") == 0
    finally:
        await conn.close()


async def test_a_failing_version_changes_nothing(empty_database: str) -> None:
    """A version that fails (here: an index of 0002's name made by hand before) rolls back
    whole: the database stays as it was, and start-up says what failed."""
    await made_by_the_release_before_versions(empty_database)
    await admin_sql(empty_database, "CREATE INDEX product_name_trgm_idx ON product (product_name)")
    with pytest.raises(DatabaseStartupError, match=r"cannot upgrade the database at .*already"):
        await prepare_database(empty_database, seed=True)
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("SELECT to_regclass('alembic_version')") is None
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'sku'"
        )
        assert "price" not in {c[0] for c in columns}
    finally:
        await conn.close()


def migrate(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn}
    return subprocess.run(
        [sys.executable, "-m", "scripts.migrate", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_script_shows_pending_versions_and_applies_them(empty_database: str) -> None:
    await made_by_the_release_before_versions(empty_database)
    shown = migrate(empty_database)
    assert shown.returncode == 1, shown.stderr
    assert "none recorded" in shown.stdout
    assert f"{NEWEST}  pending" in shown.stdout
    assert f"{len(EVERY_VERSION)} pending" in shown.stdout
    applied = migrate(empty_database, "upgrade")
    assert applied.returncode == 0, applied.stderr
    assert f"{NEWEST}  applied now" in applied.stdout
    assert f"upgraded to {NEWEST}" in applied.stdout
    again = migrate(empty_database)
    assert (again.returncode, again.stdout.splitlines()[-1]) == (0, "up to date")


def test_every_version_has_its_sql_file_and_is_named_by_its_id() -> None:
    """The fast start-up check reads the newest id from the file names: they must agree
    with the revisions inside, which chain 0001, 0002, ... in order."""
    scripts = sorted((MIGRATIONS / "versions").glob("*.py"))
    ids = [f"{i:04d}" for i in range(1, len(scripts) + 1)]
    assert [p.stem[:4] for p in scripts] == ids
    chain = zip([None, *ids], ids, strict=False)  # (down_revision, revision) per script
    for script, (previous, current) in zip(scripts, chain, strict=True):
        text = script.read_text()
        assert f'revision = "{current}"' in text, script
        assert f"down_revision = {previous!r}".replace("'", '"') in text, script
        assert script.with_suffix(".sql").is_file(), script
    assert newest_version() == ids[-1]
