"""Thin HTTP adapters for SKUs over `queries`: parse, call, map None to 404. Bodies come
from PostgreSQL as JSON text and go out as they are."""

from functools import partial
from typing import Annotated

from lihil import Empty, Param, Route, status

from src.catalog import dependencies as deps
from src.catalog.models import MAX_ID
from src.catalog.readers import CatalogReader
from src.catalog.routes import (
    DATA,
    GATED,
    WITH_BODY,
    IfMatch,
    PageSize,
    ProductId,
    json_body,
    removed,
    unchanged,
    written,
)
from src.catalog.skus import queries
from src.catalog.skus.models import (
    Sku,
    SkuIn,
    SkuPage,
    StockChange,
    decode_sku_in,
    decode_stock_change,
)
from src.db.pool import Conn, Database
from src.edge.routes import operation
from src.errors import InsufficientStock, NotFound, PreconditionFailed, StockOverflow

# LIHIL TRAP (Meta bounds on path and query parameters are ignored): bounds go through Param.
SkuId = Annotated[int, Param(ge=1, le=MAX_ID, description="The SKU's id.")]
SkuBody = Annotated[SkuIn, Param("body", decoder=decode_sku_in)]
StockBody = Annotated[StockChange, Param("body", decoder=decode_stock_change)]


@operation("listSkus", "List a product's SKUs", NotFound, *DATA, cache=deps.of_sku_page)
async def list_skus(
    product_id: ProductId,
    reader: CatalogReader,
    limit: PageSize = 20,
    after: Annotated[
        int,
        Param(
            "query",
            ge=0,
            le=MAX_ID,
            description="Return SKUs after this id (default 0: from the start).",
        ),
    ] = 0,
) -> SkuPage:
    """The product's SKUs by ascending id, one keyset page at a time."""
    page = await reader.sku_page_json(product_id, after=after, limit=limit)
    if page is None:
        raise NotFound(f"product {product_id} does not exist")
    return json_body(page, SkuPage)


@operation("getSku", "Get a SKU", NotFound, *DATA, cache=deps.of_sku)
async def get_sku(sku_id: SkuId, db: Database) -> Sku:
    """One SKU by id."""
    sku = await queries.sku_json(db, sku_id=sku_id)
    if sku is None:
        raise NotFound(f"sku {sku_id} does not exist")
    return json_body(sku, Sku)


@operation("createSku", "Create a SKU", NotFound, *WITH_BODY, location="/skus/{sku_id}")
async def create_sku(
    product_id: ProductId, sku: SkuBody, conn: Conn
) -> Annotated[Sku, status.CREATED]:
    """Add a SKU to a product; answers 201 with its Location. A new size or color joins."""
    sku_id, text = await queries.insert_sku(conn, product_id=product_id, sku=sku)
    return await written(conn, text, status=201, location=f"/skus/{sku_id}")  # type: ignore[return-value]


@operation("replaceSku", "Replace a SKU", NotFound, PreconditionFailed, *WITH_BODY)
async def replace_sku(sku_id: SkuId, sku: SkuBody, conn: Conn, if_match: IfMatch = "") -> Sku:
    """Replace a SKU's size, color, price, currency and stock (all of them)."""
    what = f"sku {sku_id}"
    async with conn.transaction():
        await queries.add_names(conn, sku)  # before the row is locked (queries: lock order)
        async with unchanged(conn, if_match, table="sku", key=sku_id, what=what):
            text = await queries.update_sku(conn, sku_id=sku_id, sku=sku)
            if text is None:
                raise NotFound(f"{what} does not exist")  # raised inside: no name is added
    return await written(conn, text)  # type: ignore[return-value]


@operation("deleteSku", "Delete a SKU", NotFound, PreconditionFailed, *GATED)
async def delete_sku(
    sku_id: SkuId, conn: Conn, if_match: IfMatch = ""
) -> Annotated[Empty, status.NO_CONTENT]:
    """Delete a SKU."""
    delete = partial(queries.delete_sku, conn, sku_id=sku_id)
    return await removed(conn, if_match, table="sku", key=sku_id, delete=delete)  # type: ignore[return-value]


@operation(
    "changeStock", "Change a SKU's stock", NotFound, InsufficientStock, StockOverflow, *WITH_BODY
)
async def change_stock(sku_id: SkuId, stock_change: StockBody, db: Database) -> Sku:
    """Add `delta` to the stock atomically; 409 (nothing changed) below 0 or past 2^31-1."""
    # Concurrent changes of one SKU apply one at a time in PostgreSQL (queries.change_stock).
    sku = await queries.change_stock(db, sku_id=sku_id, delta=stock_change.delta)
    if sku is None:
        raise NotFound(f"sku {sku_id} does not exist")
    return await written(db, sku)  # type: ignore[return-value]


def build_routes() -> list[Route]:
    """Fresh Route objects for one app (LIHIL TRAP: routes bind to the first app set up)."""
    product_skus, sku = Route("/products/{product_id}/skus"), Route("/skus/{sku_id}")
    stock = sku.sub("/stock")
    tag = ["skus"]
    product_skus.get(list_skus, tags=tag)
    product_skus.post(create_sku, tags=tag)
    sku.get(get_sku, tags=tag)
    sku.put(replace_sku, tags=tag)
    sku.delete(delete_sku, tags=tag)
    stock.post(change_stock, tags=tag)
    return [product_skus, sku, stock]
