"""Reads at memory speed, never stale past the feed (API.md "Reads at memory speed"): the
response cache as the app uses it, with the catalog feed dropping what changes touch."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from lihil.vendors import TestClient

from src.app import create_app
from src.catalog import queries
from src.config import Settings
from src.edge.cache import ResponseCache
from tests.catalog.test_feed import write
from tests.conftest import admin_sql, connected
from tests.fuzzing import Answer, read_answer
from tests.helpers import LiveServer, make_settings

WAIT_S = 10


def run(coro: Any) -> Any:
    return asyncio.run(coro)


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
        run(admin_sql(database_url, rename))
        renamed.wait()
        release.set()
        old = racing.result(WAIT_S).json()["product_name"]  # it began before the change
        after = client.get("/products/5").json()["product_name"]
    assert old != "Renamed"
    assert after == ("Renamed" if checked else old)


def cache_counts(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    counts = {}
    for line in text.splitlines():
        if line.startswith("catalog_cache_"):
            name, value = line.rsplit(" ", 1)
            counts[name] = float(value)
    return counts


def test_a_second_read_is_a_hit_with_the_same_body_tag_and_a_position(client: TestClient) -> None:
    first = client.get("/products/9")
    second = client.get("/products/9")
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert position_of(second) >= position_of(first) >= 0
    counts = cache_counts(client)
    assert counts['catalog_cache_requests_total{result="hit"}'] >= 1
    assert counts["catalog_cache_entries"] >= 1


def test_a_write_is_read_back_at_once_on_the_worker_that_made_it(client: TestClient) -> None:
    """Read-your-writes: every client answer the write touches is fresh right after it."""
    brand_id = client.get("/products/9").json()["brand_id"]
    for path in ["/products/9", f"/products?brand_id={brand_id}&limit=100", "/brands"]:
        client.get(path)  # client now
    written = client.put("/products/9", json={"product_name": "Fresh", "brand_id": brand_id})
    assert written.status_code == 200
    assert position_of(written) > 0
    assert client.get("/products/9").json()["product_name"] == "Fresh"
    page = client.get(f"/products?brand_id={brand_id}&limit=100").json()["items"]
    assert {"product_id": 9, "product_name": "Fresh", "brand_id": brand_id} in page
    renamed = client.put("/brands/3", json={"brand_name": "Fresh brand"})
    assert {"brand_id": 3, "brand_name": "Fresh brand"} in client.get("/brands").json()
    assert position_of(client.get("/brands")) >= position_of(renamed)


def test_a_change_in_plain_sql_drops_the_answer_once_the_feed_delivers_it(
    client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered = Applied(monkeypatch, "sku:77")
    sku = client.get("/skus/77").json()
    assert client.get("/skus/77").json() == sku  # a hit
    run(admin_sql(database_url, "UPDATE sku SET price = price + 1 WHERE sku_id = 77"))
    delivered.wait()
    assert client.get("/skus/77").json()["price"] == sku["price"] + 1


def test_a_sku_moved_in_plain_sql_drops_both_products_sku_pages(
    client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old product's SKU page is dropped too (the move used to name only the new
    product: that page was served with the SKU in it until something else touched it)."""
    left = Applied(monkeypatch, "product-skus:31")
    old_page = client.get("/products/31/skus").json()
    sku_id = old_page["items"][0]["sku_id"]
    assert client.get("/products/31/skus").json() == old_page  # a hit
    run(admin_sql(database_url, "UPDATE sku SET product_id = 32 WHERE sku_id = $1", sku_id))
    left.wait()
    assert sku_id not in [s["sku_id"] for s in client.get("/products/31/skus").json()["items"]]
    assert client.get(f"/skus/{sku_id}").json()["product_id"] == 32


def test_a_current_tag_is_304_from_memory_without_the_database(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted at the query: 50 revalidations read nothing (a count of the server's
    transactions could not tell, its statistics lag a second behind)."""
    tag = client.get("/brands").headers["etag"]
    reads = 0
    real_brands_json = queries.brands_json

    async def brands_json(db: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_brands_json(db)

    monkeypatch.setattr(queries, "brands_json", brands_json)
    hits = cache_counts(client)['catalog_cache_requests_total{result="hit"}']
    for _ in range(50):
        answer = client.get("/brands", headers={"If-None-Match": tag})
        assert answer.status_code == 304 and answer.headers["etag"] == tag
    assert reads == 0
    assert cache_counts(client)['catalog_cache_requests_total{result="hit"}'] == hits + 50
    # The count counts: once a brand is renamed, the next read goes to the database.
    renamed = client.put("/brands/1", json={"brand_name": "Renamed"})
    assert renamed.status_code == 200
    assert client.get("/brands").status_code == 200 and reads == 1


def test_catalog_position_must_be_a_change_id(client: TestClient) -> None:
    for bad in ["x", "-1", "01", "1e3", str(2**63)]:
        answer = client.get("/products/1", headers={"Catalog-Position": bad})
        assert answer.status_code == 422, bad
        assert answer.json()["errors"][0]["field"] == "Catalog-Position"
    assert client.get("/products/1", headers={"Catalog-Position": "0"}).status_code == 200


def test_a_position_beyond_every_recorded_change_is_422(client: TestClient) -> None:
    """No write answered it: once the feed has read the database, the position is still
    ahead, so the answer cannot reflect it (it used to wait CACHE_WAIT_MS, then answer 200
    as of an older position)."""
    newest = position_of(client.get("/brands"))
    answer = client.get("/products/1", headers={"Catalog-Position": str(2**62)})
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert error == {
        "location": "header",
        "field": "Catalog-Position",
        "message": f"is beyond every change recorded (the newest is {newest})",
    }


def test_a_position_committed_after_the_feed_last_read_is_answered_at_it(
    client: TestClient, database_url: str
) -> None:
    """A change made elsewhere (plain SQL here) and named at once: the feed reads the
    database for it instead of waiting to be told, and the answer reflects it."""
    client.get("/products/2")  # held

    async def rename() -> int:
        async with connected(database_url) as conn:
            rename = "UPDATE product SET product_name = 'Now' WHERE product_id = 2 RETURNING 0"
            return (await write(conn, rename))[1]

    change_id = run(rename())
    answer = client.get("/products/2", headers={"Catalog-Position": str(change_id)})
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


async def test_hits_served_by_the_protocol_answer_as_the_app_does(live_server: LiveServer) -> None:
    """Served as `make run` serves it (src.server.HttpProtocol), a hit is answered before
    any ASGI request is made: the same answer as through the app, in order among pipelined
    requests, 304 for a current tag, and counted in both metrics."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    get = b"GET /products/12 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    brands = b"GET /brands HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def answer() -> Answer:
        return await asyncio.wait_for(read_answer(reader), WAIT_S)

    try:
        writer.write(get)
        first = await answer()  # a miss, through the app
        assert first.status == 200
        writer.write(get + brands + get)  # a hit, a miss the app answers, a hit
        answers = [await answer() for _ in range(3)]
        assert [a.body for a in answers] == [first.body, answers[1].body, first.body]
        assert answers[1].body.startswith(b"[") and b'"brand_id"' in answers[1].body
        varying = ("date", "x-request-id")
        same = {k: v for k, v in first.headers.items() if k not in varying}
        for hit in (answers[0], answers[2]):
            assert {k: v for k, v in hit.headers.items() if k not in varying} == same
        etag = first.headers["etag"].encode()
        writer.write(get.replace(b"\r\n\r\n", b"\r\nIf-None-Match: " + etag + b"\r\n\r\n"))
        current = await answer()
        assert (current.status, current.body, current.headers["etag"]) == (
            304,
            b"",
            first.headers["etag"],
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
