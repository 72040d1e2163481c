"""The same three endpoints in idiomatic FastAPI: a pool of 6 opened in the lifespan, handed
to handlers by a dependency, Pydantic response models, HTTPException for 404.

    uvicorn bench.references.fastapi_app:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from pydantic import BaseModel


class Brand(BaseModel):
    brand_id: int
    brand_name: str


class Product(BaseModel):
    product_id: int
    product_name: str
    brand_id: int


class Health(BaseModel):
    status: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=6, max_size=6)
    try:
        yield
    finally:
        await app.state.pool.close()


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
app = FastAPI(lifespan=lifespan)


@app.get("/brands")
async def list_brands(pool: Pool) -> list[Brand]:
    rows = await pool.fetch("SELECT brand_id, brand_name FROM brand ORDER BY brand_id")
    return [Brand(**row) for row in rows]


@app.get("/products/{product_id}")
async def get_product(product_id: Annotated[int, Path(ge=1, le=2**31 - 1)], pool: Pool) -> Product:
    row = await pool.fetchrow(
        "SELECT product_id, product_name, brand_id FROM product WHERE product_id = $1",
        product_id,
    )
    if row is None:
        raise HTTPException(status_code=404, detail="not found")
    return Product(**row)


@app.get("/health")
async def health() -> Health:
    return Health(status="ok")
