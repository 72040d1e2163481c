"""SQL-first data access: each function's SQL sits beside it and returns Structs.

Functions take an asyncpg connection or pool (anything with fetch/fetchrow/execute).
Domain failures are raised as `src.errors` exceptions; the edge maps them to HTTP. Each
public function is a `database_call`: a lost connection leaves it as DatabaseUnavailable.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg

from src.catalog.models import MAX_PRICE, Brand, BrandIn, Product, ProductIn, ProductPage
from src.catalog.positions import POSITION, Read
from src.catalog.skus.queries import LOCKED_SKU_JSON
from src.db.pool import Database, Executor, database_call
from src.errors import BrandInUse, UnknownBrand

# The read endpoints' bodies are built by PostgreSQL (row_to_json, json_agg) and passed
# through as they come: no Record, Struct or encoding per request in Python. The SQL names
# the same columns, in the same order, as the Structs in models.py describe.


@database_call
async def brands_json(db: Executor) -> Read:
    """Every brand by id, as the JSON array GET /brands answers."""
    row = await db.fetchrow(
        f"""
        SELECT {POSITION}, coalesce(json_agg(b ORDER BY b.brand_id), '[]')::text
        FROM (SELECT brand_id, brand_name FROM brand) b
        """
    )
    assert row is not None  # an aggregate always answers a row
    return Read(*row)


@database_call
async def brand_json(db: Executor, *, brand_id: int) -> Read | None:
    """One brand as JSON, or None."""
    row = await db.fetchrow(
        f"SELECT {POSITION}, row_to_json(b)::text FROM (SELECT brand_id, brand_name FROM brand"
        " WHERE brand_id = $1) b",
        brand_id,
    )
    return Read(*row) if row else None


@database_call
async def products_json(db: Executor, product_ids: list[int]) -> dict[int, Read]:
    """Products by id as JSON (those that exist), for a batch of lookups (`src.db.batch`)."""
    rows = await db.fetch(
        f"SELECT p.product_id, {POSITION}, row_to_json(p)::text FROM (SELECT product_id,"
        " product_name, brand_id FROM product WHERE product_id = any($1::int[])) p",
        product_ids,
    )
    return {product_id: Read(position, text) for product_id, position, text in rows}


# GET /products: a keyset page by ascending product_id, filtered. Each filter is a fixed
# condition on `p` (a product) with `{}` where its parameters go; the statement joins those
# a request gives with AND and numbers their parameters. So its text depends only on which
# filters are given, never on their values, which are always parameters. The SKU filters
# are EXISTS probes, which PostgreSQL plans as semi-joins: beside the product walk in
# product_id order (sku_product_id_price_idx, sku_in_stock_product_id_price_idx), or from
# sku_price_product_id_idx when a price range holds few SKUs. `s.product_id > $1` repeats
# the page's start on the SKU side (PostgreSQL carries no inequality across a join), so a
# page far down the catalog starts its SKU walk there too.
# One row even for an empty page: the feed position the statement saw, and the page beside.
PRODUCT_PAGE = (
    """
    SELECT f.position, p.product_id, p.product_name, p.brand_id
    FROM (SELECT """
    + POSITION
    + """ AS position) f
    LEFT JOIN LATERAL (
        SELECT p.product_id, p.product_name, p.brand_id FROM product p
        WHERE p.product_id > $1{conditions}
        ORDER BY p.product_id
        LIMIT $2
    ) p ON true
    ORDER BY p.product_id
"""
)
OF_BRAND = "p.brand_id = {}"  # product_brand_id_product_id_idx
# q, when pg_trgm can take a trigram from it: product_name_trgm_idx.
NAME_HAS = "p.product_name ILIKE {}"
# q, when it cannot (one or two characters, text without a word): product_name_grams_idx
# (0004). lower() LIKE lower() is ILIKE (PostgreSQL folds both sides so for UTF-8), spelt
# so that the trigram index, which would have to read all of itself, is left out.
NAME_HAS_SHORT = (
    "lower(p.product_name) LIKE lower({})"
    " AND product_name_grams(p.product_name) @> product_search_grams({})"
)
PRICED = (
    "EXISTS (SELECT FROM sku s WHERE s.product_id = p.product_id AND s.product_id > $1"
    " AND s.price BETWEEN {} AND {})"
)
PRICED_IN_STOCK = (
    "EXISTS (SELECT FROM sku s WHERE s.product_id = p.product_id AND s.product_id > $1"
    " AND s.price BETWEEN {} AND {} AND s.stock > 0)"
)
IN_STOCK = (
    "EXISTS (SELECT FROM sku s WHERE s.product_id = p.product_id AND s.product_id > $1"
    " AND s.stock > 0)"
)

# The best plan for q and price ranges depends on their values: a rare q is read from its
# index and sorted, a common one found by walking products in order; a narrow price range
# starts from the price index. A cached statement's generic plan is one plan for all
# values: after five executions PostgreSQL may keep one that walks every product (seen:
# 350 ms for a q + price page that its own plan serves in 25 ms, at 1,000,000 products).
# So those pages are planned for their values, in a read-only transaction of their own,
# and planned as they run: random_page_cost 1.1, since the catalog is read from memory,
# where an index probe costs about what a sequential page does (with the default 4, made
# for disks, the planner walked products for 200-700 ms where probing took 10); and no
# parallel workers, which cost a process start each for a page of at most 101 rows while
# concurrent requests already keep the cores busy (p99 halved with them off).
PLANNED_FOR_VALUES = (
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL random_page_cost = 1.1;"
    " SET LOCAL max_parallel_workers_per_gather = 0"
)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching names that contain `text` as it is: its `%`, `_` and `\\`
    are plain characters."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def trigram_searchable(text: str) -> bool:
    """Whether pg_trgm takes a trigram from LIKE '%text%': from a word (letters and digits)
    of 3 characters, or fewer where the text bounds it (a word after a character of the
    text counts 2 more, one before such a character 1 more: pg_trgm pads words so)."""
    for word in re.finditer(r"[^\W_]+", text):
        bounded = 2 * (word.start() > 0) + (word.end() < len(text))
        if len(word.group()) + bounded >= 3:
            return True
    return False


@dataclass(frozen=True)
class ProductFilter:
    """What GET /products filters by (None or False: not at all)."""

    brand_id: int | None = None
    q: str | None = None  # names containing it, any case
    min_price: int | None = None  # products with a SKU priced in the range, ends included
    max_price: int | None = None
    in_stock: bool = False  # products with a SKU in stock (in the price range, if given)

    @property
    def planned_for_values(self) -> bool:
        return self.q is not None or self.min_price is not None or self.max_price is not None


def product_page_query(
    filters: ProductFilter, *, after: int, limit: int
) -> tuple[str, list[object]]:
    """The statement and its arguments for one page (one row more than `limit`)."""
    args: list[object] = [after, limit + 1]
    conditions = []

    def condition(sql: str, *values: object) -> None:
        first = len(args) + 1
        args.extend(values)
        conditions.append(sql.format(*(f"${n}" for n in range(first, len(args) + 1))))

    if filters.brand_id is not None:
        condition(OF_BRAND, filters.brand_id)
    if filters.q is not None:
        if trigram_searchable(filters.q):
            condition(NAME_HAS, like_pattern(filters.q))
        else:
            condition(NAME_HAS_SHORT, like_pattern(filters.q), filters.q)
    if filters.min_price is not None or filters.max_price is not None:
        low = filters.min_price if filters.min_price is not None else 0
        high = filters.max_price if filters.max_price is not None else MAX_PRICE
        condition(PRICED_IN_STOCK if filters.in_stock else PRICED, low, high)
    elif filters.in_stock:
        condition(IN_STOCK)
    sql = PRODUCT_PAGE.format(conditions="".join(f" AND {c}" for c in conditions))
    return sql, args


@database_call
async def list_products(
    db: Executor, filters: ProductFilter, *, after: int, limit: int
) -> tuple[int, ProductPage]:
    """Keyset page by ascending product_id of the products `filters` keeps (one extra row
    tells whether more follow), and the feed position the page reflects."""
    sql, args = product_page_query(filters, after=after, limit=limit)
    if filters.planned_for_values:
        async with _connection(db) as conn, conn.transaction(readonly=True):
            await conn.execute(PLANNED_FOR_VALUES)
            rows = await conn.fetch(sql, *args)
    else:
        rows = await db.fetch(sql, *args)
    found = [r[1:] for r in rows if r[1] is not None]
    items = [Product(*r) for r in found[:limit]]
    next_after = items[-1].product_id if len(found) > limit else None
    return rows[0][0], ProductPage(items=items, next_after=next_after)


@asynccontextmanager
async def _connection(db: Executor) -> AsyncIterator[asyncpg.Connection]:
    """One connection of `db` for a block (`db` itself when it is one)."""
    if isinstance(db, Database):
        async with db.connection() as conn:
            yield conn
    elif isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn  # type: ignore[misc]  # a PoolConnectionProxy stands in for a Connection
    else:
        yield db


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


# The catalog feed (/ws/catalog): the outbox the triggers (src/db/migrations) fill. Frames are
# built by PostgreSQL, like the read bodies: `{"id", "type", "data"}` as the wire has it.

CHANGE_PAGE = 500  # changes read per query (a replay or a listener's catch-up)
NO_LIMIT = 2**63 - 1


@database_call
async def feed_position(db: Executor) -> int:
    """The newest committed change id (or the newest pruned one, if none is left)."""
    position: int = await db.fetchval(f"SELECT {POSITION}")
    return position


class Change(NamedTuple):
    """One retained change: its id, its wire frame, and the tags that route it to filtered
    feeds (the product it touches, if any, and the brands it touches)."""

    id: int
    frame: str
    product_id: int | None
    brand_ids: list[int]
    type: str  # e.g. "sku.updated"
    key: int  # the id of the row it changed


# One query per filter, each an indexed predicate: a filtered page reads the matching rows
# of its window only, in id order (catalog_change_product_id_idx walks (product_id, id),
# catalog_change_brand's primary key (brand_id, id): see migration 0003).
# $1 < id <= $2, $3 rows at most, $4 the product or the brand. Besides the frame: the tags
# that route it, its type and the id of the row it changed (the response cache's key).
_CHANGES_AFTER = """
    SELECT s.pruned_through, c.id, c.frame, c.product_id, c.brand_ids, c.type, c.key
    FROM catalog_feed_state s
    LEFT JOIN LATERAL (
        SELECT id, json_build_object('id', id, 'type', type, 'data', data)::text AS frame,
               product_id, brand_ids, type,
               coalesce(data ->> 'sku_id', data ->> 'product_id', data ->> 'brand_id')::int
                   AS key
        FROM catalog_change
        WHERE {window}
        ORDER BY id
        {limit}
    ) c ON true
    """
CHANGES_AFTER = {
    None: _CHANGES_AFTER.format(window="id > $1 AND id <= $2", limit="LIMIT $3"),
    "product": _CHANGES_AFTER.format(
        window="product_id = $4 AND id > $1 AND id <= $2", limit="LIMIT $3"
    ),
    "brand": _CHANGES_AFTER.format(
        window="""id = any(ARRAY(
            SELECT id FROM catalog_change_brand
            WHERE brand_id = $4 AND id > $1 AND id <= $2
            ORDER BY id
            LIMIT $3
        ))""",
        limit="",
    ),
}


@database_call
async def changes_after(
    db: Executor,
    *,
    after: int,
    through: int = NO_LIMIT,
    limit: int = CHANGE_PAGE,
    product_id: int | None = None,
    brand_id: int | None = None,
) -> tuple[int, list[Change]]:
    """The retained changes with `after` < id <= `through`, oldest first, with their wire
    frames and tags; only those of `product_id` or of `brand_id` when one is given (not
    both). And (read in the same snapshot) the largest id pruning has removed: when it
    exceeds `after`, changes the caller has not seen are gone."""
    if product_id is not None and brand_id is not None:
        raise ValueError("filter by product_id or by brand_id, not both")
    if product_id is not None:
        rows = await db.fetch(CHANGES_AFTER["product"], after, through, limit, product_id)
    elif brand_id is not None:
        rows = await db.fetch(CHANGES_AFTER["brand"], after, through, limit, brand_id)
    else:
        rows = await db.fetch(CHANGES_AFTER[None], after, through, limit)
    pruned_through = rows[0]["pruned_through"] if rows else 0
    return pruned_through, [
        Change(r["id"], r["frame"], r["product_id"], r["brand_ids"], r["type"], r["key"])
        for r in rows
        if r["id"] is not None
    ]


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
