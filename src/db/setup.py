"""Schema and demo data, at start-up: the pending schema versions (`src.db.migrate`), then
the demo catalog into an empty one; by whichever worker gets the set-up lock first, while
the others wait for it and find nothing left to do."""

from __future__ import annotations

import random
from typing import Any, NamedTuple

import asyncpg

from src.db.migrations import newest_version
from src.db.pool import DatabaseStartupError, redact

BRANDS, PRODUCTS, SKUS = 100, 1_000, 100_000
CURRENCY = "EUR"
COLORS = ("Blue", "Black")
SIZES = ("Small", "Medium", "Large")

_SYLLABLES = (
    "ka ri to mo na shi lu ve ra po de fi gu ho ja ke li ma ne ox pi qu sa te un vo wa xe yo zu"
).split()


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


def demo_rows() -> dict[str, list[tuple[Any, ...]]]:
    """The deterministic demo catalog: same seed, same rows, on every machine."""
    rng = random.Random(20241125)
    brands = [(f"{_word(rng)}",) for _ in range(BRANDS)]
    products = [(f"{_word(rng)} {_word(rng)}", rng.randint(1, BRANDS)) for _ in range(PRODUCTS)]
    keys = [
        (rng.randint(1, PRODUCTS), rng.randint(1, len(SIZES)), rng.randint(1, len(COLORS)))
        for _ in range(SKUS)
    ]
    # Prices from 4.99 to 199.99 ending in 9; stock 0..40, about one SKU in eight sold out.
    skus = [
        (*key, rng.randint(50, 2000) * 10 - 1, CURRENCY, max(0, rng.randint(-5, 40)))
        for key in keys
    ]
    return {
        "brand": brands,
        "product": products,
        "product_color": [(c,) for c in COLORS],
        "product_size": [(s,) for s in SIZES],
        "sku": skus,
    }


_COLUMNS = {
    "brand": ["brand_name"],
    "product": ["product_name", "brand_id"],
    "product_color": ["product_color_name"],
    "product_size": ["product_size_name"],
    "sku": ["product_id", "product_size_id", "product_color_id", "price", "currency", "stock"],
}


class Prepared(NamedTuple):
    applied: list[str]  # the schema versions this call applied, oldest first
    seeded: bool  # whether it loaded the demo catalog


async def prepare_database(dsn: str, *, seed: bool = True) -> Prepared:
    """Apply the pending schema versions; load the demo data into an empty catalog. One
    transaction under the set-up lock: a failure leaves the database as it was.
    DatabaseStartupError saying why when it cannot (made by a newer release, a version
    that fails)."""
    if await _nothing_to_do(dsn, seed=seed):
        return Prepared([], False)
    # Alembic and SQLAlchemy cost ~0.7 s of imports per process: loaded only when a version
    # is pending (or the database is empty), not on every start of every worker.
    from sqlalchemy.exc import DBAPIError

    from src.db.migrate import SchemaTooNew

    try:
        return await _prepare(dsn, seed=seed)
    except SchemaTooNew as exc:
        raise DatabaseStartupError(f"cannot use the database at {redact(dsn)}: {exc}") from exc
    except (asyncpg.PostgresError, DBAPIError) as exc:
        raise DatabaseStartupError(
            f"cannot upgrade the database at {redact(dsn)} (nothing was changed): {exc}"
        ) from exc


async def _nothing_to_do(dsn: str, *, seed: bool) -> bool:
    """The usual start: the database is at this code's newest version and holds a catalog
    (or none is wanted). Versions only go up, so no lock is needed to see that."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('alembic_version')") is None:
            return False
        if await conn.fetchval("SELECT version_num FROM alembic_version") != newest_version():
            return False
        return not seed or bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM brand)"))
    finally:
        await conn.close()


async def _prepare(dsn: str, *, seed: bool) -> Prepared:
    from src.db.migrate import setup_transaction, upgrade

    async with setup_transaction(dsn) as conn:
        applied = await conn.run_sync(upgrade)
        if not seed:
            return Prepared(applied, False)
        raw = (await conn.get_raw_connection()).driver_connection
        assert isinstance(raw, asyncpg.Connection)  # the asyncpg dialect's own connection
        if await raw.fetchval("SELECT EXISTS (SELECT 1 FROM brand)"):
            return Prepared(applied, False)
        # The demo is the catalog's starting state, not a change to it: loaded with the
        # feed's triggers off (else 101,100 change rows and notifications saying so).
        for table in _COLUMNS:
            await raw.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for table, rows in demo_rows().items():  # COPY: 100,000 rows in well under a second
            await raw.copy_records_to_table(table, records=rows, columns=_COLUMNS[table])
        for table in _COLUMNS:
            await raw.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        return Prepared(applied, True)
