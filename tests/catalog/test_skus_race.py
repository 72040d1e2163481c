"""Stock never oversells (API.md "The catalog a shop can run"): 200 concurrent decrements of
a SKU with 50 in stock, on one real uvicorn and across two on one database; exactly 50
succeed, each seeing its own stock, and the other 150 answer 409 `insufficient-stock`."""

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from src.catalog import queries
from tests.helpers import AUTH, LiveServer, live_servers
from tests.redisd import redis_server

STOCK, REQUESTS = 50, 200
SKU_ID = 42  # a demo SKU; each test has its own copy of the catalog


@pytest.fixture
def two_servers(database_url: str) -> Iterator[list[LiveServer]]:
    """Two processes on one database, as tests/test_scale_out.py starts them (BROKER=redis
    on a Redis of their own), started at once; stopped by pid afterwards."""
    with (
        redis_server() as redis,
        live_servers(database_url, 2, BROKER="redis", REDIS_URL=redis.url) as started,
    ):
        yield started


async def race(servers: list[LiveServer], sql: asyncpg.Connection) -> None:
    """Set the stock to STOCK, then send REQUESTS `{"delta": -1}` at once, spread over the
    servers; check every answer, the final stock and the feed's record of the changes."""
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    clients = [
        httpx.AsyncClient(base_url=s.http, headers=AUTH, limits=limits, timeout=30) for s in servers
    ]
    try:
        sku = (await clients[0].get(f"/skus/{SKU_ID}")).json()
        written = {k: sku[k] for k in ("size", "color", "price", "currency")}
        put = await clients[0].put(f"/skus/{SKU_ID}", json={**written, "stock": STOCK})
        assert put.json()["stock"] == STOCK
        start = await queries.feed_position(sql)

        began = time.perf_counter()
        answers = await asyncio.gather(
            *(
                clients[i % len(clients)].post(f"/skus/{SKU_ID}/stock", json={"delta": -1})
                for i in range(REQUESTS)
            )
        )
        took = time.perf_counter() - began
        print(f"\n{REQUESTS} concurrent decrements on {len(servers)} process(es): {took:.3f} s")

        statuses = Counter(a.status_code for a in answers)
        assert statuses == {200: STOCK, 409: REQUESTS - STOCK}, statuses
        refused = [a.json() for a in answers if a.status_code == 409]
        assert {p["type"] for p in refused} == {"insufficient-stock"}
        # Each success saw the stock the one before left: 49, 48, ..., 0, each once.
        left = sorted(a.json()["stock"] for a in answers if a.status_code == 200)
        assert left == list(range(STOCK))
        assert (await clients[1 % len(clients)].get(f"/skus/{SKU_ID}")).json()["stock"] == 0
    finally:
        for client in clients:
            await client.aclose()
    recorded = await sql.fetch(
        "SELECT (data ->> 'stock')::int FROM catalog_change"
        " WHERE id > $1 AND type = 'sku.updated' AND (data ->> 'sku_id')::int = $2 ORDER BY id",
        start,
        SKU_ID,
    )
    assert [r[0] for r in recorded] == list(range(STOCK - 1, -1, -1))  # in commit order


async def test_concurrent_decrements_never_oversell(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    await race([live_server], sql)


async def test_concurrent_decrements_never_oversell_across_two_processes(
    two_servers: list[LiveServer], sql: asyncpg.Connection
) -> None:
    await race(two_servers, sql)
