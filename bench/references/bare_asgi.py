"""The practical floor of Python + asyncpg: a bare ASGI callable, no framework.

GET /brands, GET /products/{id} (404 when missing) and GET /ping (no database), over an
asyncpg pool of 6 connections opened in the ASGI lifespan (DSN from DATABASE_URL), with
msgspec encoding dicts of the records. Anything else is 404; a method other than GET, 405.

    uvicorn bench.references.bare_asgi:app
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg
import msgspec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_ID = 2**31 - 1
JSON = [(b"content-type", b"application/json")]
_encode = msgspec.json.Encoder().encode
_pool: asyncpg.Pool | None = None

PING = _encode({"status": "ok"})
NOT_FOUND = _encode({"detail": "not found"})
NOT_ALLOWED = _encode({"detail": "method not allowed"})


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [*JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    global _pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                _pool = await asyncpg.create_pool(
                    os.environ["DATABASE_URL"], min_size=6, max_size=6
                )
            except Exception as exc:  # reported to the server, which stops
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _pool is not None:
                await _pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _product(send: Send, pool: asyncpg.Pool, raw: str) -> None:
    product_id = int(raw) if raw.isdigit() else 0
    row = None
    if 1 <= product_id <= MAX_ID:
        row = await pool.fetchrow(
            "SELECT product_id, product_name, brand_id FROM product WHERE product_id = $1",
            product_id,
        )
    if row is None:
        await _respond(send, 404, NOT_FOUND)
    else:
        await _respond(send, 200, _encode(dict(row)))


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return  # no WebSockets here: uvicorn closes the handshake
    assert _pool is not None, "the lifespan opens the pool before any request"
    path: str = scope["path"]
    if scope["method"] != "GET":
        await _respond(send, 405, NOT_ALLOWED)
    elif path == "/ping":
        await _respond(send, 200, PING)
    elif path == "/brands":
        rows = await _pool.fetch("SELECT brand_id, brand_name FROM brand ORDER BY brand_id")
        await _respond(send, 200, _encode([dict(r) for r in rows]))
    elif path.startswith("/products/"):
        await _product(send, _pool, path[len("/products/") :])
    else:
        await _respond(send, 404, NOT_FOUND)
