"""Brand writes (API.md "The catalog a shop can run"): create, rename, delete; a brand a
product names cannot be deleted; every change reaches the feed."""

import asyncio
import json

import asyncpg
import httpx
import pytest
import websockets
from lihil.vendors import TestClient

from tests.catalog.test_routes import assert_problem
from tests.helpers import AUTH, LiveServer


def test_a_brand_is_created_renamed_and_deleted(client: TestClient) -> None:
    created = client.post("/brands", json={"brand_name": "Northwind"})
    assert created.status_code == 201
    brand = created.json()
    assert brand == {"brand_id": brand["brand_id"], "brand_name": "Northwind"}
    assert created.headers["location"] == f"/brands/{brand['brand_id']}"
    assert client.get(created.headers["location"]).json() == brand
    assert brand in client.get("/brands").json()

    renamed = client.put(f"/brands/{brand['brand_id']}", json={"brand_name": "Southwind"})
    assert renamed.status_code == 200 and renamed.json()["brand_name"] == "Southwind"

    assert client.delete(f"/brands/{brand['brand_id']}").status_code == 204
    assert_problem(client.get(f"/brands/{brand['brand_id']}"), 404, "not-found")
    assert_problem(client.delete(f"/brands/{brand['brand_id']}"), 404, "not-found")


def test_a_brand_a_product_names_is_not_deleted(client: TestClient) -> None:
    """409 brand-in-use; the brand and its products stay."""
    products = client.get("/products?brand_id=3&limit=1").json()["items"]
    assert products, "the demo catalog gives brand 3 products"
    body = assert_problem(client.delete("/brands/3"), 409, "brand-in-use")
    assert "brand 3" in body["detail"]
    assert client.get("/brands/3").status_code == 200
    assert client.get(f"/products/{products[0]['product_id']}").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"brand_name": ""},
        {"brand_name": "   "},
        {"brand_name": "x" * 201},
        {"brand_name": 7},
        {"brand_name": "ok", "extra": 1},
        {"brand_name": "a\u0000b"},
    ],
)
def test_a_bad_brand_is_422_and_writes_nothing(client: TestClient, body: object) -> None:
    before = client.get("/brands").json()
    assert_problem(client.post("/brands", json=body), 422, "invalid-request")
    assert_problem(client.put("/brands/1", json=body), 422, "invalid-request")
    assert client.get("/brands").json() == before


def test_brand_writes_need_a_token_and_a_known_brand(client: TestClient) -> None:
    no_token = {"Authorization": ""}
    assert_problem(
        client.post("/brands", json={"brand_name": "x"}, headers=no_token), 401, "unauthorized"
    )
    assert_problem(client.delete("/brands/1", headers=no_token), 401, "unauthorized")
    assert_problem(client.put("/brands/999999", json={"brand_name": "x"}), 404, "not-found")
    assert_problem(client.delete("/brands/05"), 422, "invalid-request")


async def test_brand_writes_reach_the_feed_in_order(
    live_server: LiveServer, sql: asyncpg.Connection
) -> None:
    """brand.created, brand.updated, brand.deleted, in order, with the rows as GET shows
    them (its own server: the shared one keeps its brands as they are)."""
    async with (
        websockets.connect(f"{live_server.ws}/ws/catalog") as feed,
        httpx.AsyncClient(base_url=live_server.http, headers=AUTH) as http,
    ):
        brand = (await http.post("/brands", json={"brand_name": "Feedwind"})).json()
        path = f"/brands/{brand['brand_id']}"
        assert (await http.put(path, json={"brand_name": "Feedwind 2"})).status_code == 200
        assert (await http.delete(path)).status_code == 204
        seen = [json.loads(await asyncio.wait_for(feed.recv(), 10)) for _ in range(3)]
    assert [(c["type"], c["data"]) for c in seen] == [
        ("brand.created", brand),
        ("brand.updated", {**brand, "brand_name": "Feedwind 2"}),
        ("brand.deleted", {"brand_id": brand["brand_id"]}),
    ]
    assert (
        await sql.fetchval("SELECT count(*) FROM brand WHERE brand_id = $1", brand["brand_id"]) == 0
    )
