"""Reads at memory speed, never stale past the feed (API.md "Reads at memory speed"): the
response cache as the app uses it, with the catalog feed dropping what changes touch."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx
import pytest
from lihil.vendors import TestClient

from src.app import create_app
from src.catalog import queries
from src.config import Settings
from src.edge.cache import ResponseCache
from tests.helpers import AUTH, LiveServer, make_settings

WAIT_S = 10


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def execute(url: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


def position_of(answer: Any) -> int:
    return int(answer.headers["catalog-position"])


class Applied:
    """Signals once the app's cache has applied a change naming `tag` (the feed delivered
    it): wraps ResponseCache.invalidate for the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tag: str) -> None:
        self.event = threading.Event()
        real = ResponseCache.invalidate

        def invalidate(cache: ResponseCache, change_id: int, tags: Any) -> None:
            tags = frozenset(tags)
            real(cache, change_id, tags)
            if tag in tags:
                self.event.set()

        monkeypatch.setattr(ResponseCache, "invalidate", invalidate)

    def wait(self) -> None:
        assert self.event.wait(WAIT_S), "the feed did not deliver the change"


@pytest.mark.parametrize("checked", [True, False], ids=["position-checked", "unchecked"])
def test_a_fill_racing_a_change_is_refused_by_position(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch, checked: bool
) -> None:
    """A read of product 5 takes its snapshot, then is held before the edge stores its
    answer; meanwhile product 5 is renamed and the feed delivers the change. Released, the
    read answers the old name (it began before the change), but the cache must not keep
    it: the next read shows the new name. Without the position check (`unchecked`) the old
    answer is kept and served after the change: the race this check exists for."""
    snapshot_taken, release = threading.Event(), threading.Event()
    real_products_json = queries.products_json
    held = False

    async def products_json(db: Any, product_ids: list[int]) -> Any:
        nonlocal held
        found = await real_products_json(db, product_ids)
        if 5 in product_ids and not held:  # the first read of product 5 only
            held = True
            snapshot_taken.set()
            await asyncio.to_thread(release.wait, WAIT_S)
        return found

    monkeypatch.setattr(queries, "products_json", products_json)
    renamed = Applied(monkeypatch, "product:5")
    if not checked:
        monkeypatch.setattr(ResponseCache, "_changed_since", lambda *_: False)
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(1) as thread:
        racing = thread.submit(client.get, "/products/5")
        assert snapshot_taken.wait(WAIT_S)
        rename = "UPDATE product SET product_name = 'Renamed' WHERE product_id = 5"
        run(execute(database_url, rename))
        renamed.wait()
        release.set()
        old = racing.result(WAIT_S).json()["product_name"]  # it began before the change
        after = client.get("/products/5").json()["product_name"]
    assert old != "Renamed"
    assert after == ("Renamed" if checked else old)


@pytest.fixture
def cached(settings: Settings) -> Any:
    with TestClient(create_app(settings), headers=AUTH) as client:
        yield client


def cache_counts(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    counts = {}
    for line in text.splitlines():
        if line.startswith("catalog_cache_"):
            name, value = line.rsplit(" ", 1)
            counts[name] = float(value)
    return counts


def test_a_second_read_is_a_hit_with_the_same_body_tag_and_a_position(cached: TestClient) -> None:
    first = cached.get("/products/9")
    second = cached.get("/products/9")
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert position_of(second) >= position_of(first) >= 0
    counts = cache_counts(cached)
    assert counts['catalog_cache_requests_total{result="hit"}'] >= 1
    assert counts["catalog_cache_entries"] >= 1


def test_a_write_is_read_back_at_once_on_the_worker_that_made_it(cached: TestClient) -> None:
    """Read-your-writes: every cached answer the write touches is fresh right after it."""
    brand_id = cached.get("/products/9").json()["brand_id"]
    for path in ["/products/9", f"/products?brand_id={brand_id}&limit=100", "/brands"]:
        cached.get(path)  # cached now
    written = cached.put("/products/9", json={"product_name": "Fresh", "brand_id": brand_id})
    assert written.status_code == 200
    assert position_of(written) > 0
    assert cached.get("/products/9").json()["product_name"] == "Fresh"
    page = cached.get(f"/products?brand_id={brand_id}&limit=100").json()["items"]
    assert {"product_id": 9, "product_name": "Fresh", "brand_id": brand_id} in page
    renamed = cached.put("/brands/3", json={"brand_name": "Fresh brand"})
    assert {"brand_id": 3, "brand_name": "Fresh brand"} in cached.get("/brands").json()
    assert position_of(cached.get("/brands")) >= position_of(renamed)


def test_a_change_in_plain_sql_drops_the_answer_once_the_feed_delivers_it(
    cached: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered = Applied(monkeypatch, "sku:77")
    sku = cached.get("/skus/77").json()
    assert cached.get("/skus/77").json() == sku  # a hit
    run(execute(database_url, "UPDATE sku SET price = price + 1 WHERE sku_id = 77"))
    delivered.wait()
    assert cached.get("/skus/77").json()["price"] == sku["price"] + 1


def test_a_sku_moved_in_plain_sql_drops_both_products_sku_pages(
    cached: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old product's SKU page is dropped too (the move used to name only the new
    product: that page was served with the SKU in it until something else touched it)."""
    left = Applied(monkeypatch, "product-skus:31")
    old_page = cached.get("/products/31/skus").json()
    sku_id = old_page["items"][0]["sku_id"]
    assert cached.get("/products/31/skus").json() == old_page  # a hit
    run(execute(database_url, "UPDATE sku SET product_id = 32 WHERE sku_id = $1", sku_id))
    left.wait()
    assert sku_id not in [s["sku_id"] for s in cached.get("/products/31/skus").json()["items"]]
    assert cached.get(f"/skus/{sku_id}").json()["product_id"] == 32


def test_a_current_tag_is_304_from_memory_without_the_database(
    cached: TestClient, database_url: str
) -> None:
    tag = cached.get("/brands").headers["etag"]

    async def transactions() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        finally:
            await conn.close()

    before = run(transactions())
    for _ in range(50):
        answer = cached.get("/brands", headers={"If-None-Match": tag})
        assert answer.status_code == 304 and answer.headers["etag"] == tag
    # The statistics lag a little; 50 reads from the database would be 50 or more.
    assert run(transactions()) - before < 10


def test_catalog_position_must_be_a_change_id(cached: TestClient) -> None:
    for bad in ["x", "-1", "01", "1e3", str(2**63)]:
        answer = cached.get("/products/1", headers={"Catalog-Position": bad})
        assert answer.status_code == 422, bad
        assert answer.json()["errors"][0]["field"] == "Catalog-Position"
    assert cached.get("/products/1", headers={"Catalog-Position": "0"}).status_code == 200


def test_a_position_beyond_every_recorded_change_is_422(cached: TestClient) -> None:
    """No write answered it: once the feed has read the database, the position is still
    ahead, so the answer cannot reflect it (it used to wait CACHE_WAIT_MS, then answer 200
    as of an older position)."""
    newest = position_of(cached.get("/brands"))
    answer = cached.get("/products/1", headers={"Catalog-Position": str(2**62)})
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert error == {
        "location": "header",
        "field": "Catalog-Position",
        "message": f"is beyond every change recorded (the newest is {newest})",
    }


def test_a_position_committed_after_the_feed_last_read_is_answered_at_it(
    cached: TestClient, database_url: str
) -> None:
    """A change made elsewhere (plain SQL here) and named at once: the feed reads the
    database for it instead of waiting to be told, and the answer reflects it."""
    cached.get("/products/2")  # held

    async def rename() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute("UPDATE product SET product_name = 'Now' WHERE product_id = 2")
                return int(await conn.fetchval("SELECT currval('catalog_change_id_seq')"))
        finally:
            await conn.close()

    change_id = run(rename())
    answer = cached.get("/products/2", headers={"Catalog-Position": str(change_id)})
    assert answer.json()["product_name"] == "Now" and position_of(answer) >= change_id


def test_the_cache_serves_from_the_first_request(settings: Settings) -> None:
    """The app starts serving once its feed has caught up: the first read is a miss that
    fills, not a bypass (which it was whenever it came before the listener's first run)."""
    with TestClient(create_app(settings)) as client:
        client.get("/products/3")
        client.get("/products/3")
        counts = cache_counts(client)
    assert counts['catalog_cache_requests_total{result="bypass"}'] == 0
    assert counts['catalog_cache_requests_total{result="miss"}'] == 1
    assert counts['catalog_cache_requests_total{result="hit"}'] == 1


def test_bounded_and_off(database_url: str) -> None:
    small = make_settings(DATABASE_URL=database_url, CACHE_MAX_ENTRIES=2, CACHE_WAIT_MS=50)
    with TestClient(create_app(small)) as client:
        for product_id in range(1, 6):
            client.get(f"/products/{product_id}")
        assert cache_counts(client)["catalog_cache_entries"] == 2
    off = make_settings(DATABASE_URL=database_url, CACHE="off")
    with TestClient(create_app(off)) as client:
        assert client.get("/products/1").headers["catalog-position"]
        assert not any(k.startswith("catalog_cache_") for k in cache_counts(client))


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One HTTP/1.1 answer: status line, headers (lower-case names), body (by length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    status, *lines = head[:-4].split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    length = int(headers.get(b"content-length", b"0"))
    return status, headers, await asyncio.wait_for(reader.readexactly(length), WAIT_S)


async def test_hits_served_by_the_protocol_answer_as_the_app_does(live_server: LiveServer) -> None:
    """Served as `make run` serves it (src.server.HttpProtocol), a hit is answered before
    any ASGI request is made: the same answer as through the app, in order among pipelined
    requests, 304 for a current tag, and counted in both metrics."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    get = b"GET /products/12 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    brands = b"GET /brands HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    try:
        writer.write(get)
        status, first, body = await read_answer(reader)  # a miss, through the app
        assert status == b"HTTP/1.1 200 OK"
        writer.write(get + brands + get)  # a hit, a miss the app answers, a hit
        answers = [await read_answer(reader) for _ in range(3)]
        assert [a[2] for a in answers] == [body, answers[1][2], body]
        assert answers[1][2].startswith(b"[") and b'"brand_id"' in answers[1][2]
        varying = (b"date", b"x-request-id")
        same = {k: v for k, v in first.items() if k not in varying}
        for _, headers, _ in (answers[0], answers[2]):
            assert {k: v for k, v in headers.items() if k not in varying} == same
        tagged = get.replace(b"\r\n\r\n", b"\r\nIf-None-Match: " + first[b"etag"] + b"\r\n\r\n")
        writer.write(tagged)
        status, headers, body = await read_answer(reader)
        assert (status, body, headers[b"etag"]) == (
            b"HTTP/1.1 304 Not Modified",
            b"",
            first[b"etag"],
        )
    finally:
        writer.close()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live_server.port}") as client:
        metrics = (await client.get("/metrics")).text
    assert 'catalog_cache_requests_total{result="hit"} 3.0' in metrics
    assert (
        'catalog_http_requests_total{method="GET",route="/products/{product_id}",status="200"} 3.0'
        in metrics
    )
