"""Thin HTTP adapters over `queries`: parse, call, map None to 404.

Each handler declares its OpenAPI operation (id, summary, the problems it answers) beside
it; its tag is given where the routes are built.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, TypeVar, cast

import asyncpg
import msgspec
from lihil import Empty, Param, Route, status
from lihil.vendors import Response

from src.catalog import dependencies as deps
from src.catalog import queries
from src.catalog.models import (
    MAX_ID,
    MAX_PRICE,
    Brand,
    BrandIn,
    Product,
    ProductIn,
    ProductPage,
    decode_brand_in,
    decode_product_in,
    decode_true_or_false,
)
from src.catalog.positions import Read
from src.catalog.readers import CatalogReader
from src.db.pool import Conn, Database, Executor
from src.edge.etag import etag_of, if_match_holds
from src.edge.routes import operation
from src.errors import (
    BodyTooLarge,
    BrandInUse,
    DatabaseUnavailable,
    FieldError,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    TooManyRequests,
    Unauthorized,
    UnknownBrand,
    UnsupportedMediaType,
)

_encode = msgspec.json.Encoder().encode
T = TypeVar("T")

# LIHIL TRAP (Meta bounds on path and query parameters are ignored): a msgspec.Meta inside
# Annotated is dropped for them, so bounds go through lihil's Param. Ids outside
# PostgreSQL's INT range are client errors.
Body = Annotated[ProductIn, Param("body", decoder=decode_product_in)]
BrandBody = Annotated[BrandIn, Param("body", decoder=decode_brand_in)]
ProductId = Annotated[int, Param(ge=1, le=MAX_ID, description="The product's id.")]
BrandId = Annotated[int, Param(ge=1, le=MAX_ID, description="The brand's id.")]


# The feed position an answer reflects: a read's snapshot, a write's change (API.md
# "Reads at memory speed"). The edge keeps cacheable answers that carry it.
POSITION_HEADER = "Catalog-Position"


def json_body(read: Read, shape: type[T]) -> T:
    """A JSON body of `shape` built by PostgreSQL, passed through as it is, with the feed
    position it reflects (lihil sends a Response as is; the handler's annotation still
    documents the shape in OpenAPI)."""
    headers = {POSITION_HEADER: str(read.position)}
    return cast(T, Response(read.json, media_type="application/json", headers=headers))


async def written(
    db: Executor, body: object = None, *, status: int = 200, location: str | None = None
) -> Response:
    """A write's answer: `body` (a Struct, or JSON text PostgreSQL built; None for 204),
    with the feed position of its change: read once it committed, so at or past it (a read
    sending it back is answered with the write in, on any worker)."""
    headers = {POSITION_HEADER: str(await queries.feed_position(db))}
    if location is not None:
        headers["Location"] = location
    if body is None:
        return Response(status_code=204, headers=headers)  # no content-type either
    content = body if isinstance(body, str) else _encode(body)
    return Response(content, status_code=status, media_type="application/json", headers=headers)


# The problems of every data endpoint (bad input, database down), of writes (the edge asks
# an operation that lists Unauthorized for a token, and limits its rate), and of writes with
# a body (JSON, size).
DATA = (InvalidRequest, DatabaseUnavailable)
GATED = (Unauthorized, TooManyRequests, *DATA)
WITH_BODY = (BodyTooLarge, UnsupportedMediaType, *GATED)
WRITE = (UnknownBrand, *WITH_BODY)


PageSize = Annotated[int, Param("query", ge=1, le=100, description="Page size (default 20).")]

IfMatch = Annotated[
    str,
    Param(
        "header",
        alias="If-Match",
        description="Write only if the resource still has this ETag (from a GET); `*`: if it"
        " exists. Without it, the write is unconditional.",
    ),
]


@asynccontextmanager
async def unchanged(
    conn: asyncpg.Connection, if_match: str, *, table: str, key: int, what: str
) -> AsyncIterator[None]:
    """The block runs in one transaction; with If-Match, only while the row is still the
    version the tag names (locked until the block commits): 412 otherwise, 404 if gone."""
    async with conn.transaction():
        if if_match:
            current = await queries.locked_json(conn, table=table, key=key)
            if current is None:
                raise NotFound(f"{what} does not exist")
            if not if_match_holds(if_match, etag_of(current.encode())):
                raise PreconditionFailed(
                    f"{what} changed since the ETag in If-Match: GET it again; nothing changed"
                )
        yield


async def removed(
    conn: asyncpg.Connection,
    if_match: str,
    *,
    table: str,
    key: int,
    delete: Callable[[], Awaitable[bool]],
) -> Response:
    """A DELETE's answer: 204 once `delete` removed the row (If-Match honoured: `unchanged`),
    404 if there was none."""
    what = f"{table} {key}"
    async with unchanged(conn, if_match, table=table, key=key, what=what):
        deleted = await delete()
    if not deleted:
        raise NotFound(f"{what} does not exist")
    return await written(conn)


@operation("createBrand", "Create a brand", *WITH_BODY, location="/brands/{brand_id}")
async def create_brand(brand: BrandBody, conn: Conn) -> Annotated[Brand, status.CREATED]:
    """Create a brand; answers 201 with its Location."""
    new = await queries.insert_brand(conn, brand=brand)
    location = f"/brands/{new.brand_id}"
    return await written(conn, new, status=201, location=location)  # type: ignore[return-value]


@operation("replaceBrand", "Rename a brand", NotFound, PreconditionFailed, *WITH_BODY)
async def replace_brand(
    brand_id: BrandId, brand: BrandBody, conn: Conn, if_match: IfMatch = ""
) -> Brand:
    """Replace a brand's name."""
    async with unchanged(conn, if_match, table="brand", key=brand_id, what=f"brand {brand_id}"):
        updated = await queries.update_brand(conn, brand_id=brand_id, brand=brand)
    if updated is None:
        raise NotFound(f"brand {brand_id} does not exist")
    return await written(conn, updated)  # type: ignore[return-value]


@operation("deleteBrand", "Delete a brand", NotFound, BrandInUse, PreconditionFailed, *GATED)
async def delete_brand(
    brand_id: BrandId, conn: Conn, if_match: IfMatch = ""
) -> Annotated[Empty, status.NO_CONTENT]:
    """Delete a brand no product names (409 `brand-in-use` otherwise)."""
    delete = partial(queries.delete_brand, conn, brand_id=brand_id)
    return await removed(conn, if_match, table="brand", key=brand_id, delete=delete)  # type: ignore[return-value]


@operation("listBrands", "List brands", *DATA, cache=deps.of_brands)
async def list_brands(reader: CatalogReader) -> list[Brand]:
    """Every brand, by id."""
    return json_body(await reader.brands_json(), list[Brand])


@operation("getBrand", "Get a brand", NotFound, *DATA, cache=deps.of_brand)
async def get_brand(brand_id: BrandId, db: Database) -> Brand:
    """One brand by id."""
    brand = await queries.brand_json(db, brand_id=brand_id)
    if brand is None:
        raise NotFound(f"brand {brand_id} does not exist")
    return json_body(brand, Brand)


@operation("getProduct", "Get a product", NotFound, *DATA, cache=deps.of_product)
async def get_product(product_id: ProductId, reader: CatalogReader) -> Product:
    """One product by id."""
    product = await reader.product_json(product_id)
    if product is None:
        raise NotFound(f"product {product_id} does not exist")
    return json_body(product, Product)


# GET /products' filters. LIHIL TRAP (Optional query parameters accept null): an absent
# price is -1 and an absent q is "", neither of which a client can send.
ABSENT = -1
SearchText = Annotated[
    str,
    Param(
        "query",
        min_length=1,
        max_length=100,
        pattern=r"^[^\u0000]*$",  # no NUL: PostgreSQL's text cannot hold it
        description="Only products whose name contains this text, in any case: 1 to 100"
        " characters, taken as they are (`%`, `_` and `\\` are not wildcards).",
    ),
]
MinPrice = Annotated[
    int,
    Param(
        "query",
        ge=0,
        le=MAX_PRICE,
        description="Only products with a SKU priced at least this, in minor units (with"
        " max_price: a SKU priced in the range, ends included; above max_price is a 422).",
    ),
]
MaxPrice = Annotated[
    int,
    Param(
        "query",
        ge=0,
        le=MAX_PRICE,
        description="Only products with a SKU priced at most this, in minor units.",
    ),
]
InStock = Annotated[
    bool,
    Param(
        "query",
        decoder=decode_true_or_false,
        description="`true`: only products with a SKU in stock (with a price range: a SKU in"
        " the range and in stock). `false`, the default, filters nothing.",
    ),
]


@operation("listProducts", "List products", *DATA, cache=deps.of_product_page)
async def list_products(
    db: Database,
    # LIHIL TRAP (Optional query parameters accept null): absent is 0, not None; with an
    # Optional type lihil would accept `?brand_id=null`.
    brand_id: Annotated[
        int, Param("query", ge=1, le=MAX_ID, description="Only this brand's products.")
    ] = 0,
    limit: PageSize = 20,
    after: Annotated[
        int,
        Param(
            "query",
            ge=0,
            le=MAX_ID,
            description="Return products after this id (default 0: from the start).",
        ),
    ] = 0,
    q: SearchText = "",
    min_price: MinPrice = ABSENT,
    max_price: MaxPrice = ABSENT,
    in_stock: InStock = False,
) -> ProductPage:
    """Products by ascending id, one keyset page at a time; the filters given combine."""
    if ABSENT < max_price < min_price:
        raise InvalidRequest(
            [
                FieldError(
                    "query",
                    "min_price",
                    f"min_price ({min_price}) is greater than max_price ({max_price})",
                )
            ]
        )
    filters = queries.ProductFilter(
        brand_id=brand_id or None,
        q=q or None,
        min_price=None if min_price == ABSENT else min_price,
        max_price=None if max_price == ABSENT else max_price,
        in_stock=in_stock,
    )
    position, page = await queries.list_products(db, filters, after=after, limit=limit)
    return json_body(Read(position, _encode(page).decode()), ProductPage)


@operation("createProduct", "Create a product", *WRITE, location="/products/{product_id}")
async def create_product(product: Body, conn: Conn) -> Annotated[Product, status.CREATED]:
    """Create a product; answers 201 with its Location."""
    new = await queries.insert_product(conn, product=product)
    location = f"/products/{new.product_id}"
    return await written(conn, new, status=201, location=location)  # type: ignore[return-value]


@operation(
    "createProductTutorial",
    "Create a product (tutorial path)",
    *WRITE,
    location="/products/{product_id}",
)
async def create_product_tutorial(product: Body, conn: Conn) -> Annotated[Product, status.CREATED]:
    """Create a product; answers 201 with its Location."""
    return await create_product(product, conn)


@operation("replaceProduct", "Replace a product", NotFound, PreconditionFailed, *WRITE)
async def replace_product(
    product_id: ProductId, product: Body, conn: Conn, if_match: IfMatch = ""
) -> Product:
    """Replace a product's name and brand."""
    what = f"product {product_id}"
    async with unchanged(conn, if_match, table="product", key=product_id, what=what):
        updated = await queries.update_product(conn, product_id=product_id, product=product)
    if updated is None:
        raise NotFound(f"product {product_id} does not exist")
    return await written(conn, updated)  # type: ignore[return-value]


@operation("deleteProduct", "Delete a product", NotFound, PreconditionFailed, *GATED)
async def delete_product(
    product_id: ProductId, conn: Conn, if_match: IfMatch = ""
) -> Annotated[Empty, status.NO_CONTENT]:
    """Delete a product and its SKUs."""
    delete = partial(queries.delete_product, conn, product_id=product_id)
    return await removed(conn, if_match, table="product", key=product_id, delete=delete)  # type: ignore[return-value]


def build_routes() -> list[Route]:
    """Fresh Route objects for one app (LIHIL TRAP: routes bind to the first app set up)."""
    brands, products, product_alias = Route("/brands"), Route("/products"), Route("/product")
    brand, product = brands.sub("/{brand_id}"), products.sub("/{product_id}")
    brand_tag, product_tag = ["brands"], ["products"]
    brands.get(list_brands, tags=brand_tag)
    brands.post(create_brand, tags=brand_tag)
    brand.get(get_brand, tags=brand_tag)
    brand.put(replace_brand, tags=brand_tag)
    brand.delete(delete_brand, tags=brand_tag)
    products.get(list_products, tags=product_tag)
    products.post(create_product, tags=product_tag)
    product_alias.post(create_product_tutorial, tags=product_tag)
    product.get(get_product, tags=product_tag)
    product.put(replace_product, tags=product_tag)
    product.delete(delete_product, tags=product_tag)
    return [brands, brand, products, product, product_alias]
