"""SQL-first data access: each function's SQL sits beside it and returns Structs.

Functions take an asyncpg connection or pool (anything with fetch/fetchrow/execute).
Domain failures are raised as `src.errors` exceptions; the edge maps them to HTTP. Each
public function is a `database_call`: a lost connection leaves it as DatabaseUnavailable.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from src.catalog.models import Brand, BrandIn, Product, ProductIn, ProductPage
from src.catalog.skus.queries import LOCKED_SKU_JSON
from src.db.pool import Database, database_call
from src.errors import BrandInUse, UnknownBrand

Executor = asyncpg.Connection | asyncpg.Pool | Database  # each has fetch, fetchrow, fetchval


# The read endpoints' bodies are built by PostgreSQL (row_to_json, json_agg) and passed
# through as they come: no Record, Struct or encoding per request in Python. The SQL names
# the same columns, in the same order, as the Structs in models.py describe.


@database_call
async def brands_json(db: Executor) -> str:
    """Every brand by id, as the JSON array GET /brands answers."""
    text: str = await db.fetchval(
        """
        SELECT coalesce(json_agg(b ORDER BY b.brand_id), '[]')::text
        FROM (SELECT brand_id, brand_name FROM brand) b
        """
    )
    return text


@database_call
async def brand_json(db: Executor, *, brand_id: int) -> str | None:
    """One brand as JSON, or None."""
    text: str | None = await db.fetchval(
        "SELECT row_to_json(b)::text FROM (SELECT brand_id, brand_name FROM brand"
        " WHERE brand_id = $1) b",
        brand_id,
    )
    return text


@database_call
async def products_json(db: Executor, product_ids: list[int]) -> dict[int, str]:
    """Products by id as JSON (those that exist), for a batch of lookups (`src.db.batch`)."""
    rows = await db.fetch(
        "SELECT p.product_id, row_to_json(p)::text FROM (SELECT product_id, product_name,"
        " brand_id FROM product WHERE product_id = any($1::int[])) p",
        product_ids,
    )
    return {product_id: text for product_id, text in rows}


@database_call
async def list_products(
    db: Executor, *, brand_id: int | None, after: int, limit: int
) -> ProductPage:
    """Keyset page by ascending product_id; one extra row tells whether more follow."""
    rows = await db.fetch(
        """
        SELECT product_id, product_name, brand_id FROM product
        WHERE product_id > $1 AND ($2::int IS NULL OR brand_id = $2)
        ORDER BY product_id
        LIMIT $3
        """,
        after,
        brand_id,
        limit + 1,
    )
    items = [Product(*r) for r in rows[:limit]]
    next_after = items[-1].product_id if len(rows) > limit else None
    return ProductPage(items=items, next_after=next_after)


@database_call
async def locked_json(db: Executor, *, table: str, key: int) -> str | None:
    """The row of `table` ("brand" or "product") as GET shows it, locked until the end of the
    transaction (the current version an If-Match names), or None."""
    sql = LOCKED_JSON[table]
    text: str | None = await db.fetchval(sql, key)
    return text


LOCKED_JSON = {
    "brand": "SELECT row_to_json(b)::text FROM (SELECT brand_id, brand_name FROM brand"
    " WHERE brand_id = $1 FOR UPDATE) b",
    "product": "SELECT row_to_json(p)::text FROM (SELECT product_id, product_name, brand_id"
    " FROM product WHERE product_id = $1 FOR UPDATE) p",
    "sku": LOCKED_SKU_JSON,
}


@database_call
async def insert_brand(db: Executor, *, brand: BrandIn) -> Brand:
    row = await db.fetchrow(
        "INSERT INTO brand (brand_name) VALUES ($1) RETURNING brand_id, brand_name",
        brand.brand_name,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return Brand(*row)


@database_call
async def update_brand(db: Executor, *, brand_id: int, brand: BrandIn) -> Brand | None:
    row = await db.fetchrow(
        "UPDATE brand SET brand_name = $2 WHERE brand_id = $1 RETURNING brand_id, brand_name",
        brand_id,
        brand.brand_name,
    )
    return Brand(*row) if row else None


@database_call
async def delete_brand(db: Executor, *, brand_id: int) -> bool:
    """True if it was deleted, False if it did not exist; BrandInUse while a product names
    it (the foreign key refuses, nothing changes)."""
    try:
        status = await db.execute("DELETE FROM brand WHERE brand_id = $1", brand_id)
    except asyncpg.ForeignKeyViolationError as exc:
        raise BrandInUse(brand_id) from exc
    return bool(status == "DELETE 1")


async def _write_product(db: Executor, sql: str, *args: Any, brand_id: int) -> Product | None:
    try:
        row = await db.fetchrow(sql, *args)
    except asyncpg.ForeignKeyViolationError as exc:
        raise UnknownBrand(brand_id) from exc
    return Product(*row) if row else None


@database_call
async def insert_product(db: Executor, *, product: ProductIn) -> Product:
    created = await _write_product(
        db,
        """
        INSERT INTO product (product_name, brand_id) VALUES ($1, $2)
        RETURNING product_id, product_name, brand_id
        """,
        product.product_name,
        product.brand_id,
        brand_id=product.brand_id,
    )
    assert created is not None  # INSERT ... RETURNING always returns the row
    return created


@database_call
async def update_product(db: Executor, *, product_id: int, product: ProductIn) -> Product | None:
    return await _write_product(
        db,
        """
        UPDATE product SET product_name = $2, brand_id = $3 WHERE product_id = $1
        RETURNING product_id, product_name, brand_id
        """,
        product_id,
        product.product_name,
        product.brand_id,
        brand_id=product.brand_id,
    )


@database_call
async def delete_product(db: Executor, *, product_id: int) -> bool:
    status = await db.execute("DELETE FROM product WHERE product_id = $1", product_id)
    return bool(status == "DELETE 1")


# The catalog feed (/ws/catalog): the outbox the triggers in schema.sql fill. Frames are
# built by PostgreSQL, like the read bodies: `{"id", "type", "data"}` as the wire has it.

CHANGE_PAGE = 500  # changes read per query (a replay or a listener's catch-up)
NO_LIMIT = 2**63 - 1


@database_call
async def feed_position(db: Executor) -> int:
    """The newest committed change id (or the newest pruned one, if none is left)."""
    position: int = await db.fetchval(
        """
        SELECT greatest((SELECT max(id) FROM catalog_change),
                        (SELECT pruned_through FROM catalog_feed_state), 0)
        """
    )
    return position


@database_call
async def changes_after(
    db: Executor, *, after: int, through: int = NO_LIMIT, limit: int = CHANGE_PAGE
) -> tuple[int, list[tuple[int, str]]]:
    """The retained changes with `after` < id <= `through`, oldest first, as wire frames,
    and (read in the same snapshot) the largest id pruning has removed: when it exceeds
    `after`, changes the caller has not seen are gone."""
    rows = await db.fetch(
        """
        SELECT s.pruned_through, c.id, c.frame
        FROM catalog_feed_state s
        LEFT JOIN LATERAL (
            SELECT id, json_build_object('id', id, 'type', type, 'data', data)::text AS frame
            FROM catalog_change
            WHERE id > $1 AND id <= $2
            ORDER BY id
            LIMIT $3
        ) c ON true
        """,
        after,
        through,
        limit,
    )
    pruned_through = rows[0]["pruned_through"] if rows else 0
    return pruned_through, [(r["id"], r["frame"]) for r in rows if r["id"] is not None]


@database_call
async def prune_changes(db: Executor, *, older_than_s: float) -> int:
    """Forget changes committed more than `older_than_s` seconds ago; returns how many."""
    removed: int = await db.fetchval(
        """
        WITH gone AS (
            DELETE FROM catalog_change
            WHERE committed_at < now() - make_interval(secs => $1)
            RETURNING id
        ), mark AS (
            UPDATE catalog_feed_state
            SET pruned_through = greatest(pruned_through, (SELECT max(id) FROM gone))
            WHERE EXISTS (SELECT 1 FROM gone)
        )
        SELECT count(*) FROM gone
        """,
        older_than_s,
    )
    return removed
