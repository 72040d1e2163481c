"""Schema and demo data: applied at start-up, idempotently, by whichever worker gets there first."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import asyncpg

SCHEMA_SQL = (Path(__file__).parent / "schema.sql").read_text()
# Any constant works; it only has to be the same in every process sharing the database.
SETUP_LOCK_ID = 0x6C696869

BRANDS, PRODUCTS, SKUS = 100, 1_000, 100_000
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
    skus = [
        (rng.randint(1, PRODUCTS), rng.randint(1, len(SIZES)), rng.randint(1, len(COLORS)))
        for _ in range(SKUS)
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
    "sku": ["product_id", "product_size_id", "product_color_id"],
}


async def prepare_database(conn: asyncpg.Connection, *, seed: bool = True) -> bool:
    """Apply the schema; load the demo data into an empty catalog. True if it seeded."""
    async with conn.transaction():
        # Several workers may start at once: one applies, the others wait and find it done.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK_ID)
        await conn.execute(SCHEMA_SQL)
        if not seed or await conn.fetchval("SELECT EXISTS (SELECT 1 FROM brand)"):
            return False
        for table, rows in demo_rows().items():  # COPY: 100,000 rows in well under a second
            await conn.copy_records_to_table(table, records=rows, columns=_COLUMNS[table])
        return True
