"""Thin HTTP adapters over `queries`: parse, call, map None to 404.

Each handler declares its OpenAPI operation (id, summary, the problems it answers) beside
it; its tag is given where the routes are built.
"""

from datetime import datetime
from typing import Annotated, TypeVar, cast

import msgspec
from lihil import Empty, Param, Route, status
from lihil.vendors import Response

from src.broker.base import Broker
from src.catalog import queries
from src.catalog.models import (
    MAX_ID,
    Brand,
    Health,
    Product,
    ProductIn,
    ProductPage,
    ServerTime,
    decode_product_in,
)
from src.db.pool import Conn, Database, ping
from src.errors import (
    BodyTooLarge,
    BrokerUnavailable,
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
    TooManyRequests,
    Unauthorized,
    UnknownBrand,
    UnsupportedMediaType,
)
from src.metrics import CONTENT_TYPE, Metrics
from src.openapi import operation

_encode = msgspec.json.Encoder().encode
T = TypeVar("T")

# LIHIL TRAP (Meta bounds on path and query parameters are ignored): a msgspec.Meta inside
# Annotated is dropped for them, so bounds go through lihil's Param. Ids outside
# PostgreSQL's INT range are client errors.
Body = Annotated[ProductIn, Param("body", decoder=decode_product_in)]
ProductId = Annotated[int, Param(ge=1, le=MAX_ID, description="The product's id.")]
BrandId = Annotated[int, Param(ge=1, le=MAX_ID, description="The brand's id.")]


def json_body(text: str, shape: type[T]) -> T:
    """A JSON body of `shape` built by PostgreSQL, passed through as it is (lihil sends a
    Response as is; the handler's annotation still documents the shape in OpenAPI)."""
    return cast(T, Response(text, media_type="application/json"))


# The problems of every data endpoint (bad input, database down), of writes (src.edge's
# RequestGate: token, rate), and of writes with a body (JSON, size).
DATA = (InvalidRequest, DatabaseUnavailable)
GATED = (Unauthorized, TooManyRequests, *DATA)
WRITE = (UnknownBrand, BodyTooLarge, UnsupportedMediaType, *GATED)


@operation("getTime", "Server time")
async def get_time() -> ServerTime:
    """The server's local month, day and time of day (the tutorial's first endpoint)."""
    now = datetime.now()
    return ServerTime(month=now.month, day=now.day, time=now.strftime("%H:%M:%S.%f"))


@operation("listBrands", "List brands", DatabaseUnavailable)
async def list_brands(db: Database) -> list[Brand]:
    """Every brand, by id."""
    return json_body(await queries.brands_json(db), list[Brand])


@operation("getBrand", "Get a brand", NotFound, *DATA)
async def get_brand(brand_id: BrandId, db: Database) -> Brand:
    """One brand by id."""
    brand = await queries.brand_json(db, brand_id=brand_id)
    if brand is None:
        raise NotFound(f"brand {brand_id} does not exist")
    return json_body(brand, Brand)


@operation("getProduct", "Get a product", NotFound, *DATA)
async def get_product(product_id: ProductId, db: Database) -> Product:
    """One product by id."""
    product = await queries.product_json(db, product_id=product_id)
    if product is None:
        raise NotFound(f"product {product_id} does not exist")
    return json_body(product, Product)


@operation("listProducts", "List products", *DATA)
async def list_products(
    db: Database,
    # LIHIL TRAP (Optional query parameters accept null): absent is 0, not None; with an
    # Optional type lihil would accept `?brand_id=null`.
    brand_id: Annotated[
        int, Param("query", ge=1, le=MAX_ID, description="Only this brand's products.")
    ] = 0,
    limit: Annotated[int, Param("query", ge=1, le=100, description="Page size (default 20).")] = 20,
    after: Annotated[
        int,
        Param(
            "query",
            ge=0,
            le=MAX_ID,
            description="Return products after this id (default 0: from the start).",
        ),
    ] = 0,
) -> ProductPage:
    """Products by ascending id, one keyset page at a time, optionally of one brand."""
    return await queries.list_products(db, brand_id=brand_id or None, after=after, limit=limit)


@operation("createProduct", "Create a product", *WRITE)
async def create_product(product: Body, conn: Conn) -> Annotated[Product, status.CREATED]:
    """Create a product; answers 201 with its Location."""
    created = await queries.insert_product(conn, product=product)
    return Response(  # type: ignore[return-value]  # lihil passes Responses through as is
        _encode(created),
        status_code=201,
        media_type="application/json",
        headers={"Location": f"/products/{created.product_id}"},
    )


@operation("createProductTutorial", "Create a product (tutorial path)", *WRITE)
async def create_product_tutorial(product: Body, conn: Conn) -> Annotated[Product, status.CREATED]:
    """Create a product; answers 201 with its Location."""
    return await create_product(product, conn)


@operation("replaceProduct", "Replace a product", NotFound, *WRITE)
async def replace_product(product_id: ProductId, product: Body, conn: Conn) -> Product:
    """Replace a product's name and brand."""
    updated = await queries.update_product(conn, product_id=product_id, product=product)
    if updated is None:
        raise NotFound(f"product {product_id} does not exist")
    return updated


@operation("deleteProduct", "Delete a product", NotFound, *GATED)
async def delete_product(product_id: ProductId, conn: Conn) -> Annotated[Empty, status.NO_CONTENT]:
    """Delete a product and its SKUs."""
    if not await queries.delete_product(conn, product_id=product_id):
        raise NotFound(f"product {product_id} does not exist")
    return Response(status_code=204)  # type: ignore[return-value]  # no content-type either


@operation("getHealth", "Liveness")
async def health() -> Health:
    """Liveness: 200 while the process runs."""
    return Health(status="ok")


@operation("getMetrics", "Prometheus metrics", content_type="text/plain")
async def metrics_text(metrics: Metrics) -> str:
    """Prometheus text: requests, latency, sockets, frames, closes, pool, broker, feed."""
    return Response(metrics.render(), media_type=CONTENT_TYPE)  # type: ignore[return-value]


@operation("getReady", "Readiness", DatabaseUnavailable, BrokerUnavailable)
async def ready(db: Database, broker: Broker) -> Health:
    """Readiness: 200 when the database and the broker answer, 503 when one does not."""
    await ping(db)  # DatabaseUnavailable (503) when it does not; the log has the details
    if not broker.available:  # the broker logged the outage when it began
        raise BrokerUnavailable(
            "the broker (Redis) is unreachable: WebSockets serve each process's own clients"
        )
    return Health(status="ready")


def build_routes() -> list[Route]:
    """Fresh Route objects for one app (LIHIL TRAP: routes bind to the first app set up)."""
    time, brands, products, product_alias = (
        Route("/time"),
        Route("/brands"),
        Route("/products"),
        Route("/product"),
    )
    brand, product = brands.sub("/{brand_id}"), products.sub("/{product_id}")
    health_route, ready_route, metrics_route = Route("/health"), Route("/ready"), Route("/metrics")
    service, brand_tag, product_tag = ["service"], ["brands"], ["products"]
    time.get(get_time, tags=service)
    brands.get(list_brands, tags=brand_tag)
    brand.get(get_brand, tags=brand_tag)
    products.get(list_products, tags=product_tag)
    products.post(create_product, tags=product_tag)
    product_alias.post(create_product_tutorial, tags=product_tag)
    product.get(get_product, tags=product_tag)
    product.put(replace_product, tags=product_tag)
    product.delete(delete_product, tags=product_tag)
    health_route.get(health, tags=service)
    ready_route.get(ready, tags=service)
    metrics_route.get(metrics_text, tags=service)
    return [
        time,
        brands,
        brand,
        products,
        product,
        product_alias,
        health_route,
        ready_route,
        metrics_route,
    ]
