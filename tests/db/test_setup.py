"""Schema and demo data: idempotent, deterministic, loaded once even with racing workers."""

import asyncio
import hashlib
import json
from typing import Any

import asyncpg

from src.db.setup import demo_rows, prepare_database
from tests.db.test_migrate import EVERY_VERSION
from tests.helpers import with_database


async def counts(conn: asyncpg.Connection) -> dict[str, int]:
    tables = ("brand", "product", "product_color", "product_size", "sku")
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


# sha256 of canonical_rows(demo_rows()). It changes only when the demo data is changed on
# purpose (seed, generator, sizes): then recompute it and say so in the commit.
DEMO_ROWS_SHA256 = "24310167c18a6eddcd7494bf23c8d0e197473927a7894312a0cb5a101e838a6e"


def canonical_rows(rows: dict[str, list[tuple[Any, ...]]]) -> bytes:
    """Tables in load order, each row's values (str and int) as compact UTF-8 JSON."""
    return json.dumps(list(rows.items()), ensure_ascii=False, separators=(",", ":")).encode()


def test_demo_rows_are_pinned() -> None:
    """The same rows in every process and on every machine: a digest fixed in the code."""
    rows = demo_rows()
    assert {table: len(r) for table, r in rows.items()} == {
        "brand": 100,
        "product": 1_000,
        "product_color": 2,
        "product_size": 3,
        "sku": 100_000,
    }
    assert {type(v) for r in rows.values() for row in r for v in row} == {str, int}
    assert hashlib.sha256(canonical_rows(rows)).hexdigest() == DEMO_ROWS_SHA256


async def test_demo_catalog_has_the_books_sizes(database_url: str) -> None:
    """100 brands, 1,000 products, 100,000 SKUs, colors Blue/Black, sizes S/M/L."""
    conn = await asyncpg.connect(database_url)
    try:
        assert await counts(conn) == {
            "brand": 100,
            "product": 1000,
            "product_color": 2,
            "product_size": 3,
            "sku": 100_000,
        }
        colors = await conn.fetch("SELECT product_color_name FROM product_color ORDER BY 1")
        assert [c[0] for c in colors] == ["Black", "Blue"]
    finally:
        await conn.close()


async def test_prepare_is_idempotent_and_never_reseeds(database_url: str) -> None:
    """Running set-up again on a loaded catalog changes nothing."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM product WHERE product_id = 1")
        before = await counts(conn)
        assert await prepare_database(database_url) == ([], False)
        assert await counts(conn) == before
    finally:
        await conn.close()


async def test_racing_workers_seed_exactly_once(admin_dsn: str) -> None:
    """Two processes starting at once on an empty database load the demo data once."""
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute("DROP DATABASE IF EXISTS race_seed WITH (FORCE)")
    await admin.execute("CREATE DATABASE race_seed")
    try:
        dsn = with_database(admin_dsn, "race_seed")
        prepared = await asyncio.gather(prepare_database(dsn), prepare_database(dsn))
        # One applied every version and loaded the demo; the other waited and found it done.
        assert sorted(prepared, key=lambda p: p.seeded) == [
            ([], False),
            (EVERY_VERSION, True),
        ]
        conn = await asyncpg.connect(dsn)
        assert (await counts(conn))["sku"] == 100_000
        await conn.close()
    finally:
        await admin.execute("DROP DATABASE IF EXISTS race_seed WITH (FORCE)")
        await admin.close()
