"""The tutorial's Starlette app: a pool of 6 on app.state, JSONResponse of dict(record).

Kept in the tutorial's style (plain handlers, `request.app.state.DB`, stdlib-json
`JSONResponse`); `on_startup`/`on_shutdown` are gone from Starlette 1.x, so the pool is
opened in a lifespan. One change from the tutorial: /brands says `ORDER BY brand_id`, the
same SQL every server in the benchmark runs, so the ratios compare frameworks, not queries.

    uvicorn bench.references.starlette_app:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=6, max_size=6)
    app.state.DB = pool
    try:
        yield
    finally:
        await pool.close()


async def brands(request: Request) -> Response:
    connection = request.app.state.DB
    results = await connection.fetch("SELECT brand_id, brand_name FROM brand ORDER BY brand_id")
    return JSONResponse([dict(brand) for brand in results])


async def product(request: Request) -> Response:
    connection = request.app.state.DB
    product_id = request.path_params["product_id"]
    result = await connection.fetchrow(
        "SELECT product_id, product_name, brand_id FROM product WHERE product_id = $1",
        product_id,
    )
    if result is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    return JSONResponse(dict(result))


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/brands", brands),
        Route("/products/{product_id:int}", product),
        Route("/health", health),
    ],
    lifespan=lifespan,
)
