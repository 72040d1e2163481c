"""SKUs (API.md "The catalog a shop can run"): create, read, page through, replace, delete,
change the stock; bad input is 422, a missing product or SKU 404, a stale If-Match 412, a
write without a token 401; every change reaches the feed with the body GET shows."""

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from lihil.vendors import TestClient

from tests.catalog.test_routes import assert_problem
from tests.helpers import AUTH, LiveServer
from tests.realtime.test_live import recv_json

KEYS = ["sku_id", "product_id", "size", "color", "price", "currency", "stock"]
SKU: dict[str, Any] = {
    "size": "Medium",
    "color": "Blue",
    "price": 1999,
    "currency": "EUR",
    "stock": 7,
}
MAX = 2**31 - 1


def new_product(client: TestClient) -> int:
    created = client.post("/products", json={"product_name": "Sock", "brand_id": 1})
    assert created.status_code == 201
    product_id: int = created.json()["product_id"]
    return product_id


def add_sku(client: TestClient, product_id: int, **fields: object) -> dict[str, Any]:
    response = client.post(f"/products/{product_id}/skus", json={**SKU, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- create, read, replace, delete ------------------------------------------------------


def test_a_sku_is_created_read_replaced_and_deleted(client: TestClient) -> None:
    product_id = new_product(client)
    created = client.post(f"/products/{product_id}/skus", json=SKU)
    assert created.status_code == 201
    sku = created.json()
    assert list(sku) == KEYS  # the member order the feed's data has too
    assert sku == {"sku_id": sku["sku_id"], "product_id": product_id, **SKU}
    assert created.headers["location"] == f"/skus/{sku['sku_id']}"
    got = client.get(created.headers["location"])
    assert got.status_code == 200 and got.json() == sku and got.headers["etag"]
    page = client.get(f"/products/{product_id}/skus").json()
    assert page == {"items": [sku], "next_after": None}

    new = {"size": "Large", "color": "Black", "price": 0, "currency": "USD", "stock": 0}
    replaced = client.put(created.headers["location"], json=new)
    assert replaced.status_code == 200
    assert replaced.json() == {"sku_id": sku["sku_id"], "product_id": product_id, **new}
    assert client.get(created.headers["location"]).json() == replaced.json()

    assert client.delete(created.headers["location"]).status_code == 204
    assert_problem(client.get(created.headers["location"]), 404, "not-found")
    assert_problem(client.delete(created.headers["location"]), 404, "not-found")
    assert client.get(f"/products/{product_id}/skus").json() == {"items": [], "next_after": None}


def test_the_bounds_themselves_are_accepted_and_7_0_is_7(client: TestClient) -> None:
    """price and stock 0 and 2^31-1, 50-character names (any characters but NUL), and an
    integral float for an integer, as JSON Schema counts it."""
    product_id = new_product(client)
    edge = {"size": "x" * 50, "color": "ü " * 24 + "é", "price": MAX, "stock": 0}
    sku = add_sku(client, product_id, **edge)
    assert sku == {"sku_id": sku["sku_id"], "product_id": product_id, **SKU, **edge}
    assert client.get(f"/skus/{sku['sku_id']}").json() == sku
    top = client.put(f"/skus/{sku['sku_id']}", json={**SKU, "price": 0, "stock": MAX})
    assert (top.json()["price"], top.json()["stock"]) == (0, MAX)
    floats = add_sku(client, product_id, price=7.0, stock=12.0)
    assert (floats["price"], floats["stock"]) == (7, 12)
    assert isinstance(floats["price"], int)
    changed = client.post(f"/skus/{floats['sku_id']}/stock", json={"delta": -2.0})
    assert changed.json()["stock"] == 10


# --- paging -------------------------------------------------------------------------------


def test_sku_pages_walk_every_sku_of_a_product_once(client: TestClient) -> None:
    """45 SKUs in pages of 7, 9 (the last page exactly full), 45, 44 and 100: every one
    once, in id order; next_after is null exactly when none follows."""
    product_id = new_product(client)
    ids = [add_sku(client, product_id, stock=i)["sku_id"] for i in range(45)]
    other = new_product(client)  # another product's SKUs never show
    add_sku(client, other)
    for limit in (7, 9, 45, 44, 100):
        seen, after, pages = [], 0, 0
        while True:
            page = client.get(f"/products/{product_id}/skus?limit={limit}&after={after}").json()
            pages += 1
            assert len(page["items"]) <= limit
            seen += [s["sku_id"] for s in page["items"]]
            if page["next_after"] is None:
                break
            assert len(page["items"]) == limit and page["next_after"] == seen[-1]
            after = page["next_after"]
        assert seen == ids, limit
        assert pages == -(-45 // limit)  # no trailing empty page, even when 45 % limit == 0
    default = client.get(f"/products/{product_id}/skus").json()
    assert len(default["items"]) == 20 and default["next_after"] == ids[19]
    past = client.get(f"/products/{product_id}/skus?after={ids[-1]}").json()
    assert past == {"items": [], "next_after": None}


def test_a_demo_product_lists_its_skus(client: TestClient) -> None:
    page = client.get("/products/5/skus?limit=100").json()
    assert page["items"] and all(list(s) == KEYS for s in page["items"])
    assert all(s["product_id"] == 5 for s in page["items"])
    first = page["items"][0]
    assert client.get(f"/skus/{first['sku_id']}").json() == first


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=x", "after=-1", f"after={MAX + 1}", "limit=05"]
)
def test_bad_page_parameters_are_422(client: TestClient, query: str) -> None:
    assert_problem(client.get(f"/products/5/skus?{query}"), 422, "invalid-request")


# --- 404 ----------------------------------------------------------------------------------


def test_a_missing_product_or_sku_is_404(client: TestClient) -> None:
    for response in (
        client.get("/products/999999/skus"),
        client.post("/products/999999/skus", json=SKU),
        client.get("/skus/999999"),
        client.put("/skus/999999", json=SKU),
        client.delete("/skus/999999"),
        client.post("/skus/999999/stock", json={"delta": 1}),
    ):
        body = assert_problem(response, 404, "not-found")
        assert body["detail"] in ("product 999999 does not exist", "sku 999999 does not exist")
    assert_problem(client.get("/skus/0"), 422, "invalid-request")
    assert_problem(client.get(f"/skus/{MAX + 1}"), 422, "invalid-request")


# --- 422 ----------------------------------------------------------------------------------

BAD_SKUS: list[tuple[dict[str, object], str]] = [
    ({}, "size"),
    ({k: v for k, v in SKU.items() if k != "stock"}, "stock"),
    ({**SKU, "extra": 1}, "extra"),
    ({**SKU, "sku_id": 5}, "sku_id"),
    ({**SKU, "product_id": 5}, "product_id"),
    ({**SKU, "price": -1}, "price"),
    ({**SKU, "price": MAX + 1}, "price"),
    ({**SKU, "price": 7.5}, "price"),
    ({**SKU, "price": "7"}, "price"),
    ({**SKU, "price": None}, "price"),
    ({**SKU, "price": True}, "price"),
    ({**SKU, "stock": -1}, "stock"),
    ({**SKU, "stock": MAX + 1}, "stock"),
    ({**SKU, "currency": "eur"}, "currency"),
    ({**SKU, "currency": "EU"}, "currency"),
    ({**SKU, "currency": "EURO"}, "currency"),
    ({**SKU, "currency": "EUR\n"}, "currency"),
    ({**SKU, "currency": "E1R"}, "currency"),
    ({**SKU, "currency": 978}, "currency"),
    ({**SKU, "size": ""}, "size"),
    ({**SKU, "size": " \t\n"}, "size"),
    ({**SKU, "size": "x" * 51}, "size"),
    ({**SKU, "size": "a\u0000b"}, "size"),
    ({**SKU, "color": ""}, "color"),
    ({**SKU, "color": "y" * 51}, "color"),
    ({**SKU, "color": 3}, "color"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SKUS)
def test_a_bad_sku_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    before = client.get("/products/5/skus?limit=100").json()
    sku_id = before["items"][0]["sku_id"]
    for response in (
        client.post("/products/5/skus", json=body),
        client.put(f"/skus/{sku_id}", json=body),
    ):
        problem = assert_problem(response, 422, "invalid-request")
        assert [e["field"] for e in problem["errors"]] == [field], problem
        assert problem["errors"][0]["location"] == "body"
    assert client.get("/products/5/skus?limit=100").json() == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"delta": 0},
        {"delta": 0.0},
        {"delta": 1_000_001},
        {"delta": -1_000_001},
        {"delta": 1.5},
        {"delta": "1"},
        {"delta": None},
        {"delta": 1, "extra": 1},
        [1],
    ],
)
def test_a_bad_stock_change_is_422_and_changes_nothing(client: TestClient, body: object) -> None:
    before = client.get("/skus/1").json()
    problem = assert_problem(client.post("/skus/1/stock", json=body), 422, "invalid-request")
    assert problem["detail"]
    assert client.get("/skus/1").json() == before


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "Missing"),
        (b'{"size": "caf\xe9"}', "UTF-8"),
        (b"{", "not valid JSON"),
        (b"[" * 1000 + b"]" * 1000, "nested"),
        (b'{"delta": 1e999}', "out of range"),
        (b'{"delta": 1} trailing', "not valid JSON"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/products/5/skus"), ("PUT", "/skus/1"), ("POST", "/skus/1/stock")],
)
def test_bytes_that_are_no_body_are_422_and_write_nothing(
    client: TestClient, method: str, path: str, body: bytes, says: str
) -> None:
    client.raise_server_exceptions = False  # a 500 would be answered, as a server does
    before = client.get("/products/5/skus?limit=100").json(), client.get("/skus/1").json()
    response = client.request(
        method, path, content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422, "invalid-request")
    assert says in problem["detail"] + str(problem["errors"]), problem
    after = client.get("/products/5/skus?limit=100").json(), client.get("/skus/1").json()
    assert after == before


def test_a_stock_change_not_declared_json_is_415(client: TestClient) -> None:
    response = client.post("/skus/1/stock", content=b'{"delta": 1}')
    assert_problem(response, 415, "unsupported-media-type")


# --- stock --------------------------------------------------------------------------------


def test_stock_changes_add_up_and_never_go_below_0_or_past_the_int_range(
    client: TestClient,
) -> None:
    product_id = new_product(client)
    sku = add_sku(client, product_id, stock=5)
    path = f"/skus/{sku['sku_id']}/stock"
    assert client.post(path, json={"delta": 1_000_000}).json() == {**sku, "stock": 1_000_005}
    assert client.post(path, json={"delta": -1_000_000}).json()["stock"] == 5
    problem = assert_problem(client.post(path, json={"delta": -6}), 409, "insufficient-stock")
    assert f"sku {sku['sku_id']} has fewer than 6 in stock" in problem["detail"]
    assert client.post(path, json={"delta": -5}).json()["stock"] == 0
    assert_problem(client.post(path, json={"delta": -1}), 409, "insufficient-stock")
    assert client.get(f"/skus/{sku['sku_id']}").json()["stock"] == 0

    assert client.put(f"/skus/{sku['sku_id']}", json={**SKU, "stock": MAX - 1}).status_code == 200
    assert client.post(path, json={"delta": 1}).json()["stock"] == MAX
    problem = assert_problem(client.post(path, json={"delta": 1}), 409, "stock-overflow")
    assert "2147483647" in problem["detail"]
    assert_problem(client.post(path, json={"delta": 1_000_000}), 409, "stock-overflow")
    assert client.get(f"/skus/{sku['sku_id']}").json()["stock"] == MAX


# --- If-Match -----------------------------------------------------------------------------


def test_a_current_tag_writes_and_a_stale_one_is_412(client: TestClient) -> None:
    """As for brands and products: the tag is a GET's ETag; a stock change is a new
    version too, so a replace made from the SKU as it was before it is refused."""
    sku = add_sku(client, new_product(client))
    path = f"/skus/{sku['sku_id']}"
    tag = client.get(path).headers["etag"]
    assert (
        client.put(path, json={**SKU, "price": 100}, headers={"If-Match": tag}).status_code == 200
    )
    problem = assert_problem(
        client.put(path, json={**SKU, "price": 200}, headers={"If-Match": tag}),
        412,
        "precondition-failed",
    )
    assert "GET it again" in problem["detail"]
    assert_problem(client.delete(path, headers={"If-Match": tag}), 412, "precondition-failed")
    assert client.get(path).json()["price"] == 100

    fresh = client.get(path).headers["etag"]
    assert client.post(f"{path}/stock", json={"delta": -1}).status_code == 200
    assert_problem(
        client.put(path, json={**SKU, "stock": 99}, headers={"If-Match": fresh}),
        412,
        "precondition-failed",
    )
    assert client.get(path).json()["stock"] == SKU["stock"] - 1

    now = client.get(path).headers["etag"]
    assert client.put(path, json=SKU, headers={"If-Match": f'"x", {now}'}).status_code == 200
    assert client.put(path, json=SKU, headers={"If-Match": "*"}).status_code == 200
    weak = client.get(path).headers["etag"]
    assert_problem(
        client.put(path, json=SKU, headers={"If-Match": f"W/{weak}"}), 412, "precondition-failed"
    )
    assert client.delete(path, headers={"If-Match": weak}).status_code == 204
    assert_problem(client.delete(path, headers={"If-Match": "*"}), 404, "not-found")
    assert_problem(client.put(path, json=SKU, headers={"If-Match": "*"}), 404, "not-found")


# --- auth -----------------------------------------------------------------------------------


def test_sku_writes_need_a_token_and_reads_do_not(client: TestClient) -> None:
    no_token = {"Authorization": ""}
    before = client.get("/skus/1").json()
    for response in (
        client.post("/products/5/skus", json=SKU, headers=no_token),
        client.put("/skus/1", json=SKU, headers=no_token),
        client.delete("/skus/1", headers=no_token),
        client.post("/skus/1/stock", json={"delta": 1}, headers=no_token),
        client.post("/skus/1/stock", json={"delta": 1}, headers={"Authorization": "Bearer x"}),
    ):
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/skus/1", headers=no_token).json() == before
    assert client.get("/products/5/skus", headers=no_token).status_code == 200


# --- sizes and colors, the feed (a live server and its database) ----------------------------


async def names(sql: asyncpg.Connection, table: str, name: str) -> int:
    count: int = await sql.fetchval(
        f"SELECT count(*) FROM {table} WHERE {table}_name = $1",
        name,
    )
    return count


async def test_a_new_size_or_color_joins_the_catalog_once(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """A new size and color are added with the SKU that names them (once, even when ten
    SKUs name them at the same moment); a write refused with 404 adds neither."""
    async with httpx.AsyncClient(base_url=live_server.http, headers=AUTH) as http:
        before = await sql.fetchval("SELECT count(*) FROM product_size")
        sku = {**SKU, "size": "Extra large", "color": "Teal"}
        answers = await asyncio.gather(
            *(http.post(f"/products/{p}/skus", json=sku) for p in range(1, 11))
        )
        assert [a.status_code for a in answers] == [201] * 10
        assert {(a.json()["size"], a.json()["color"]) for a in answers} == {("Extra large", "Teal")}
        assert await names(sql, "product_size", "Extra large") == 1
        assert await names(sql, "product_color", "Teal") == 1
        assert await sql.fetchval("SELECT count(*) FROM product_size") == before + 1

        gone = await http.post("/products/999999/skus", json={**SKU, "size": "Never"})
        assert gone.status_code == 404
        gone = await http.put("/skus/999999", json={**SKU, "color": "Never"})
        assert gone.status_code == 404
        assert await names(sql, "product_size", "Never") == 0
        assert await names(sql, "product_color", "Never") == 0

        sku_id = answers[0].json()["sku_id"]
        put = await http.put(f"/skus/{sku_id}", json={**SKU, "color": "Navy 🌊"})
        assert put.json()["color"] == "Navy 🌊"
        assert await names(sql, "product_color", "Navy 🌊") == 1


async def test_writes_adding_the_same_new_name_at_once_all_succeed(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """Replaces of one SKU (half with If-Match), creates and stock changes, all at once, all
    naming the same new color: none waits on another forever (a deadlock was a 500 when a
    replace locked the SKU before adding the name)."""
    async with httpx.AsyncClient(base_url=live_server.http, headers=AUTH) as http:
        for round_ in range(10):
            sku = {**SKU, "color": f"Shade {round_}"}
            answers = await asyncio.gather(
                *(
                    http.put("/skus/1", json=sku, headers={"If-Match": "*"} if i % 2 else {})
                    for i in range(6)
                ),
                *(http.post(f"/products/{p}/skus", json=sku) for p in (1, 2)),
                *(http.post("/skus/1/stock", json={"delta": 1}) for _ in range(2)),
            )
            assert [a.status_code for a in answers] == [200] * 6 + [201] * 2 + [200] * 2
            assert await names(sql, "product_color", f"Shade {round_}") == 1


async def test_every_sku_change_reaches_the_feed_as_get_shows_it(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """POST, PUT, a stock change and DELETE: sku.created, sku.updated, sku.updated,
    sku.deleted, in order, whose data is the GET body (byte for byte as recorded)."""
    async with (
        websockets.connect(f"{live_server.ws}/ws/catalog") as feed,
        httpx.AsyncClient(base_url=live_server.http, headers=AUTH) as http,
    ):
        created = await http.post("/products/7/skus", json=SKU)
        path = created.headers["location"]
        shown = [(await http.get(path)).text]
        assert (await http.put(path, json={**SKU, "size": "Tiny"})).status_code == 200
        shown.append((await http.get(path)).text)
        assert (await http.post(f"{path}/stock", json={"delta": 3})).status_code == 200
        shown.append((await http.get(path)).text)
        assert (await http.delete(path)).status_code == 204
        seen = [await recv_json(feed) for _ in range(4)]
    sku_id = created.json()["sku_id"]
    assert [c["type"] for c in seen] == ["sku.created", "sku.updated", "sku.updated", "sku.deleted"]
    assert [c["data"] for c in seen[:3]] == [json.loads(text) for text in shown]
    assert all(list(c["data"]) == KEYS for c in seen[:3])
    assert seen[3]["data"] == {"sku_id": sku_id, "product_id": 7}
    assert json.loads(shown[2])["stock"] == SKU["stock"] + 3
    recorded = await sql.fetch(
        "SELECT data::text FROM catalog_change WHERE id = any($1::bigint[]) ORDER BY id",
        [c["id"] for c in seen[:3]],
    )
    assert [r[0] for r in recorded] == shown  # the same bytes: GET's ETag names the data
