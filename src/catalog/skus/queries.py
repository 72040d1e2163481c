"""SQL-first access to SKUs: each function's SQL beside it.

Every body is built by PostgreSQL with `SKU_JSON`, the very expression the feed's trigger
(migration 0002) builds `sku.created`/`sku.updated` data with: a GET body, a write's answer
and the feed's data are the same bytes, and an ETag names them. Sizes and colors are
written by name; a new one joins product_size / product_color in the same transaction as
the SKU that names it.
"""

from __future__ import annotations

import asyncpg

from src.catalog.positions import POSITION, Read
from src.catalog.skus.models import SkuIn
from src.db.pool import Executor, database_call
from src.errors import InsufficientStock, NotFound, StockOverflow

# The SKU row `s` as the API shows it, key for key as the trigger's json_build_object.
SKU_JSON = """json_build_object(
    'sku_id', s.sku_id,
    'product_id', s.product_id,
    'size', (SELECT product_size_name FROM product_size
             WHERE product_size_id = s.product_size_id),
    'color', (SELECT product_color_name FROM product_color
              WHERE product_color_id = s.product_color_id),
    'price', s.price,
    'currency', s.currency,
    'stock', s.stock)::text"""

# For If-Match (src.catalog.queries.LOCKED_JSON): the row as GET shows it, locked.
LOCKED_SKU_JSON = f"SELECT {SKU_JSON} FROM sku s WHERE s.sku_id = $1 FOR UPDATE OF s"


@database_call
async def sku_json(db: Executor, *, sku_id: int) -> Read | None:
    """One SKU as JSON, or None."""
    row = await db.fetchrow(f"SELECT {POSITION}, {SKU_JSON} FROM sku s WHERE s.sku_id = $1", sku_id)
    return Read(*row) if row else None


PageKey = tuple[int, int, int]  # (product_id, after, limit)


@database_call
async def sku_pages_json(db: Executor, keys: list[PageKey]) -> dict[PageKey, Read]:
    """Keyset pages of products' SKUs by ascending sku_id, each as the JSON object GET
    answers, for a batch of lookups (`src.db.batch`): one query for every page asked in one
    loop iteration. A product that does not exist has no entry. Each page reads one SKU
    more than its limit, which tells whether more follow."""
    rows = await db.fetch(
        f"""
        SELECT k.i, {POSITION}, p.product_id IS NOT NULL, s.sku_id,
               CASE WHEN s.sku_id IS NOT NULL THEN {SKU_JSON} END
        FROM unnest($1::int[], $2::int[], $3::int[]) WITH ORDINALITY AS k(product_id, after, n, i)
        LEFT JOIN product p ON p.product_id = k.product_id
        LEFT JOIN LATERAL (
            SELECT * FROM sku
            WHERE sku.product_id = p.product_id AND sku.sku_id > k.after
            ORDER BY sku.sku_id
            LIMIT k.n + 1
        ) s ON true
        ORDER BY k.i, s.sku_id
        """,
        [key[0] for key in keys],
        [key[1] for key in keys],
        [key[2] for key in keys],
    )
    found: dict[int, list[tuple[int, str]]] = {}
    position = rows[0][1] if rows else 0  # one statement: one snapshot for the batch
    for i, _, exists, sku_id, text in rows:
        if exists:
            skus = found.setdefault(i, [])
            if sku_id is not None:
                skus.append((sku_id, text))
    pages = {}
    for i, skus in found.items():
        limit = keys[i - 1][2]
        next_after = str(skus[limit - 1][0]) if len(skus) > limit else "null"
        items = ",".join(text for _, text in skus[:limit])
        pages[keys[i - 1]] = Read(
            position, '{"items":[' + items + '],"next_after":' + next_after + "}"
        )
    return pages


# A new size or color joins the catalog in the transaction of the SKU that names it. Lock
# order: names first, then SKU rows. Adding a name waits for a concurrent transaction that
# adds the same one; were it holding a SKU row locked meanwhile (an If-Match PUT), two
# writes of one SKU could wait for each other (DeadlockDetectedError: a 500, seen).


@database_call
async def add_names(conn: asyncpg.Connection, sku: SkuIn) -> None:
    """Add the SKU's size and color if the catalog lacks them. Once this returns, both rows
    exist for the caller's next statement: added here, or committed by whoever added them
    first (the unique index makes this wait for a concurrent transaction adding one)."""
    await conn.execute(
        """
        WITH size AS (
            INSERT INTO product_size (product_size_name)
            SELECT $1 WHERE NOT EXISTS (
                SELECT 1 FROM product_size WHERE product_size_name = $1)
            ON CONFLICT DO NOTHING
        )
        INSERT INTO product_color (product_color_name)
        SELECT $2 WHERE NOT EXISTS (SELECT 1 FROM product_color WHERE product_color_name = $2)
        ON CONFLICT DO NOTHING
        """,
        sku.size,
        sku.color,
    )


INSERT_SKU = f"""
    INSERT INTO sku AS s (product_id, product_size_id, product_color_id, price, currency, stock)
    SELECT $1, z.product_size_id, c.product_color_id, $4, $5, $6
    FROM product_size z, product_color c
    WHERE z.product_size_name = $2 AND c.product_color_name = $3
    RETURNING s.sku_id, {SKU_JSON}
"""


@database_call
async def insert_sku(conn: asyncpg.Connection, *, product_id: int, sku: SkuIn) -> tuple[int, str]:
    """A new SKU of the product: its id and its JSON; NotFound if there is no such product.
    One statement when the size and color are known (the usual case); otherwise they are
    added first, in a transaction with the SKU (a 404 adds neither)."""
    args = (product_id, sku.size, sku.color, sku.price, sku.currency, sku.stock)
    try:
        row = await conn.fetchrow(INSERT_SKU, *args)
        if row is None:  # a size or color the catalog lacks
            async with conn.transaction():
                await add_names(conn, sku)
                row = await conn.fetchrow(INSERT_SKU, *args)
    except asyncpg.ForeignKeyViolationError as exc:  # sku_product_id_fkey
        raise NotFound(f"product {product_id} does not exist") from exc
    assert row is not None  # both names exist now
    return row[0], row[1]


@database_call
async def update_sku(conn: asyncpg.Connection, *, sku_id: int, sku: SkuIn) -> str | None:
    """Replace the SKU's size, color, price, currency and stock: its new JSON, or None if
    there is no such SKU. Its size and color must exist: `add_names` first."""
    text: str | None = await conn.fetchval(
        f"""
        UPDATE sku AS s
        SET product_size_id = z.product_size_id, product_color_id = c.product_color_id,
            price = $4, currency = $5, stock = $6
        FROM product_size z, product_color c
        WHERE s.sku_id = $1 AND z.product_size_name = $2 AND c.product_color_name = $3
        RETURNING {SKU_JSON}
        """,
        sku_id,
        sku.size,
        sku.color,
        sku.price,
        sku.currency,
        sku.stock,
    )
    return text


@database_call
async def delete_sku(db: Executor, *, sku_id: int) -> bool:
    status = await db.execute("DELETE FROM sku WHERE sku_id = $1", sku_id)
    return bool(status == "DELETE 1")


@database_call
async def change_stock(db: Executor, *, sku_id: int, delta: int) -> str | None:
    """Add `delta` to the SKU's stock: its new JSON, or None if it does not exist.

    One statement: PostgreSQL applies concurrent changes of one SKU one at a time (the row
    lock), and each one sees the stock the one before left. The CHECK sku_stock_check
    refuses a stock below 0 (InsufficientStock), INT arithmetic one past 2^31-1
    (StockOverflow); either way nothing changes. A SKU deleted meanwhile is no row (None).
    """
    try:
        text: str | None = await db.fetchval(
            f"UPDATE sku AS s SET stock = s.stock + $2 WHERE s.sku_id = $1 RETURNING {SKU_JSON}",
            sku_id,
            delta,
        )
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name != "sku_stock_check":
            raise
        raise InsufficientStock(sku_id, delta) from exc
    except asyncpg.NumericValueOutOfRangeError as exc:
        raise StockOverflow(sku_id, delta) from exc
    return text
