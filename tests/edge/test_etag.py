"""ETag, 304 and HEAD (API.md "Caching"), in process and against a live server whose rows
change in plain SQL."""

import asyncio
import json

import asyncpg
import httpx
import pytest
import websockets
from lihil.vendors import TestClient

from src.edge.etag import etag_of, none_match
from src.web.routes import ASSETS_PATH
from tests.helpers import LiveServer

CATALOG_GETS = ["/brands", "/brands/3", "/products/3", "/products?brand_id=3&limit=5"]


def test_none_match_compares_weakly_and_understands_star() -> None:
    tag = etag_of(b"body")
    assert none_match(tag, tag)
    assert none_match(f'"other", W/{tag}', tag)
    assert none_match("*", tag)
    assert not none_match('"other"', tag)
    assert etag_of(b"body") == tag != etag_of(b"bodY")


@pytest.mark.parametrize("path", CATALOG_GETS)
def test_a_current_tag_answers_304_with_no_body(client: TestClient, path: str) -> None:
    first = client.get(path)
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')  # strong
    assert first.headers["cache-control"] == "no-cache"
    again = client.get(path, headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    assert "content-type" not in again.headers
    other = client.get(path, headers={"If-None-Match": '"not-it"'})
    assert other.status_code == 200 and other.content == first.content


@pytest.mark.parametrize("path", [*CATALOG_GETS, "/time", "/health", "/"])
def test_head_answers_wherever_get_does_with_the_same_head_and_no_body(
    client: TestClient, path: str
) -> None:
    get, head = client.get(path), client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/time":  # the time changes between the two requests
        assert head.headers["etag"] == get.headers["etag"]


def test_head_of_a_missing_row_is_a_404_head(client: TestClient) -> None:
    response = client.head("/products/999999")
    assert response.status_code == 404
    assert response.content == b""
    assert response.headers["content-type"] == "application/problem+json"
    assert "etag" not in response.headers


def test_head_where_get_is_not_served_is_405(client: TestClient) -> None:
    response = client.head("/product")  # POST only
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_errors_carry_no_tag(client: TestClient) -> None:
    assert "etag" not in client.get("/products/999999").headers
    assert "etag" not in client.get("/products?limit=0").headers


async def test_a_row_changed_in_plain_sql_never_gets_a_304_or_a_stale_body(
    shared_server: LiveServer, shared_sql: asyncpg.Connection
) -> None:
    """Once the feed has delivered a change made in plain SQL, every GET covering that row
    answers 200 with the new body and a new tag to the old tag. (Shared server: writes
    brand 42 and product 3.)"""
    name = "Renamed for the ETag test"
    paths = ["/brands", "/brands/42", "/products/3", "/products?brand_id=3&limit=100"]
    async with (
        httpx.AsyncClient(base_url=shared_server.http) as http,
        websockets.connect(f"{shared_server.ws}/ws/catalog") as feed,
    ):
        brand_of_3 = (await http.get("/products/3")).json()["brand_id"]
        paths[-1] = f"/products?brand_id={brand_of_3}&limit=100"
        before = {p: await http.get(p) for p in paths}
        for path, old in before.items():
            assert name not in old.text, path
        await shared_sql.execute("UPDATE brand SET brand_name = $1 WHERE brand_id = 42", name)
        await shared_sql.execute("UPDATE product SET product_name = $1 WHERE product_id = 3", name)
        ours = [
            ("brand.updated", {"brand_id": 42, "brand_name": name}),
            ("product.updated", {"product_id": 3, "product_name": name, "brand_id": brand_of_3}),
        ]
        while ours:  # until both are delivered (an earlier test's changes may come first)
            change = json.loads(await asyncio.wait_for(feed.recv(), 10))
            if (change["type"], change["data"]) in ours:
                ours.remove((change["type"], change["data"]))
        for path, old in before.items():
            response = await http.get(path, headers={"If-None-Match": old.headers["etag"]})
            assert response.status_code == 200, path
            assert response.headers["etag"] != old.headers["etag"], path
            assert name in response.text, path


async def test_head_over_a_real_server_keeps_the_connection_usable(
    shared_server: LiveServer,
) -> None:
    """HEAD as uvicorn serves it: the head of a GET, no body, and the kept-alive connection
    answers the next request (the edge runs HEAD as GET on a copy of the scope: uvicorn
    reads its own scope's method to know that no body follows)."""
    async with httpx.AsyncClient(base_url=shared_server.http) as client:
        for _ in range(3):
            head = await client.head("/brands/1")
            assert head.status_code == 200 and head.content == b""
            assert int(head.headers["content-length"]) > 0 and head.headers["etag"]
            assert (await client.get("/brands/1")).json()["brand_id"] == 1


def test_an_answer_with_its_own_cache_control_is_tagged_and_keeps_it(client: TestClient) -> None:
    """The docs' immutable assets: an ETag like every 200, and their Cache-Control alone."""
    response = client.get(f"{ASSETS_PATH}/swagger-ui.css")
    assert response.status_code == 200 and response.headers["etag"]
    assert response.headers.get_list("cache-control") == ["public, max-age=31536000, immutable"]
    again = client.get(
        f"{ASSETS_PATH}/swagger-ui.css", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
