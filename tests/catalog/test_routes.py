"""The catalog's HTTP contract (API.md), success and error paths, on a real database."""

import re
from typing import Any

import httpx
import pytest
from lihil.vendors import TestClient

from src.edge.checks import INTEGER_MESSAGE

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == type_ and body["status"] == status and body["title"]
    assert "type_" not in body
    return body


def test_time_reports_month_day_and_time(client: TestClient) -> None:
    """GET /time answers the server's month, day and HH:MM:SS.ffffff."""
    body = client.get("/time").json()
    assert 1 <= body["month"] <= 12 and 1 <= body["day"] <= 31
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6}", body["time"])


def test_brands_lists_the_hundred_demo_brands_by_id(client: TestClient) -> None:
    """GET /brands returns all 100 demo brands in id order."""
    brands = client.get("/brands").json()
    assert [b["brand_id"] for b in brands] == list(range(1, 101))
    assert all(set(b) == {"brand_id", "brand_name"} and b["brand_name"] for b in brands)


def test_brand_by_id_and_its_errors(client: TestClient) -> None:
    """GET /brands/{id}: 200, 404 for a missing one, 422 for a non-integer or out-of-range id."""
    assert client.get("/brands/7").json()["brand_id"] == 7
    body = assert_problem(client.get("/brands/101"), 404, "not-found")
    assert body["detail"] == "brand 101 does not exist" and body["instance"] == "/brands/101"
    body = assert_problem(client.get("/brands/abc"), 422, "invalid-request")
    assert body["errors"] == [{"location": "path", "field": "brand_id", "message": INTEGER_MESSAGE}]
    assert_problem(client.get("/brands/0"), 422, "invalid-request")
    assert_problem(client.get("/brands/99999999999"), 422, "invalid-request")


def test_product_by_id_and_its_errors(client: TestClient) -> None:
    """GET /products/{id}: the tutorial's shape, 404 when missing, 422 when not an int."""
    body = client.get("/products/1").json()
    assert set(body) == {"product_id", "product_name", "brand_id"} and body["product_id"] == 1
    assert_problem(client.get("/products/1001"), 404, "not-found")
    assert_problem(client.get("/products/1.5"), 422, "invalid-request")
    assert_problem(client.get("/products/-3"), 422, "invalid-request")


def test_product_pages_walk_every_product_once(client: TestClient) -> None:
    """Keyset pages cover all 1,000 products in order; next_after is null only at the end."""
    seen, after = [], 0
    while True:
        page = client.get("/products", params={"limit": 100, "after": after}).json()
        seen += [p["product_id"] for p in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
        assert after == page["items"][-1]["product_id"]
    assert seen == list(range(1, 1001))


def test_product_pages_default_to_twenty_and_filter_by_brand(client: TestClient) -> None:
    """The default page is 20 items; brand_id filters; an unknown brand is an empty page."""
    page = client.get("/products").json()
    assert len(page["items"]) == 20 and page["next_after"] == 20
    brand_page = client.get("/products", params={"brand_id": 3, "limit": 100}).json()
    assert brand_page["items"] and all(p["brand_id"] == 3 for p in brand_page["items"])
    ids = [p["product_id"] for p in brand_page["items"]]
    assert ids == sorted(ids)
    assert client.get("/products", params={"brand_id": 5000}).json() == {
        "items": [],
        "next_after": None,
    }


def test_last_full_page_has_no_next(client: TestClient) -> None:
    """A page that ends exactly on the last product says no product follows."""
    page = client.get("/products", params={"after": 990, "limit": 10}).json()
    assert [p["product_id"] for p in page["items"]] == list(range(991, 1001))
    assert page["next_after"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": -1}, "after"),
        ({"brand_id": 0}, "brand_id"),
        ({"brand_id": "x"}, "brand_id"),
        ({"brand_id": "null"}, "brand_id"),
        ({"brand_id": ""}, "brand_id"),
    ],
)
def test_product_pages_reject_bad_parameters(
    client: TestClient, query: dict[str, str | int], field: str
) -> None:
    """Out-of-range or non-integer paging parameters are 422 naming the parameter."""
    body = assert_problem(client.get("/products", params=query), 422, "invalid-request")
    assert [(e["location"], e["field"]) for e in body["errors"]] == [("query", field)]


@pytest.mark.parametrize("path", ["/products", "/product"])
def test_create_product_answers_201_with_location(client: TestClient, path: str) -> None:
    """POST /products (and the tutorial's /product) creates; the product can be read back."""
    response = client.post(path, json={"product_name": "x", "brand_id": 1})
    assert response.status_code == 201
    created = response.json()
    assert created == {"product_id": created["product_id"], "product_name": "x", "brand_id": 1}
    assert response.headers["location"] == f"/products/{created['product_id']}"
    assert client.get(response.headers["location"]).json() == created


BAD_BODIES = [
    pytest.param({}, "product", id="no-body"),
    pytest.param(
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        "product",
        id="bad-json",
    ),
    pytest.param({"json": {"brand_id": 1}}, "product_name", id="missing-name"),
    pytest.param({"json": {"product_name": "x"}}, "brand_id", id="missing-brand"),
    pytest.param({"json": {"product_name": 5, "brand_id": 1}}, "product_name", id="int-name"),
    pytest.param({"json": {"product_name": "x", "brand_id": "1"}}, "brand_id", id="str-brand"),
    pytest.param({"json": {"product_name": "", "brand_id": 1}}, "product_name", id="empty"),
    pytest.param({"json": {"product_name": " \t ", "brand_id": 1}}, "product_name", id="blank"),
    pytest.param({"json": {"product_name": "n" * 201, "brand_id": 1}}, "product_name", id="long"),
    pytest.param({"json": {"product_name": "x", "brand_id": 1, "x": 1}}, "x", id="unknown"),
    pytest.param({"json": [1, 2]}, "product", id="array"),
    pytest.param({"json": {"product_name": "x", "brand_id": 1.5}}, "brand_id", id="fraction"),
    pytest.param({"json": {"product_name": "x", "brand_id": True}}, "brand_id", id="bool"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_BODIES)
def test_create_product_rejects_bad_bodies(
    client: TestClient, kwargs: dict[str, Any], field: str
) -> None:
    """Every malformed body is a 422 naming the field, and nothing is written."""
    body = assert_problem(client.post("/products", **kwargs), 422, "invalid-request")
    assert [(e["location"], e["field"]) for e in body["errors"]] == [("body", field)]
    assert client.get("/products/1001").status_code == 404


def test_create_product_accepts_an_integral_number_as_brand_id(client: TestClient) -> None:
    """JSON Schema's integer includes 3.0; it is read as brand 3."""
    response = client.post("/products", json={"product_name": "x", "brand_id": 3.0})
    assert response.status_code == 201 and response.json()["brand_id"] == 3


def test_create_product_accepts_a_two_hundred_character_name(client: TestClient) -> None:
    """200 characters (not bytes) is the longest name."""
    name = "é" * 200
    assert client.post("/products", json={"product_name": name, "brand_id": 2}).status_code == 201


def test_create_product_with_unknown_brand_is_409_naming_the_brand(client: TestClient) -> None:
    """A foreign-key violation becomes a clear 409 about brand_id, not a 500."""
    response = client.post("/products", json={"product_name": "x", "brand_id": 4242})
    body = assert_problem(response, 409, "unknown-brand")
    assert body["detail"] == "brand 4242 does not exist"
    assert body["errors"] == [
        {"location": "body", "field": "brand_id", "message": "brand 4242 does not exist"}
    ]


def test_replace_product(client: TestClient) -> None:
    """PUT replaces name and brand; 404 for a missing product; the same body rules as POST."""
    response = client.put("/products/5", json={"product_name": "renamed", "brand_id": 9})
    assert response.json() == {"product_id": 5, "product_name": "renamed", "brand_id": 9}
    assert client.get("/products/5").json()["product_name"] == "renamed"
    assert_problem(
        client.put("/products/5000", json={"product_name": "x", "brand_id": 1}), 404, "not-found"
    )
    assert_problem(
        client.put("/products/5", json={"product_name": "x", "brand_id": 4242}),
        409,
        "unknown-brand",
    )
    assert_problem(client.put("/products/5", json={"product_name": ""}), 422, "invalid-request")
    assert client.get("/products/5").json()["product_name"] == "renamed"


def test_delete_product_then_it_is_gone(client: TestClient) -> None:
    """DELETE answers 204 with no body, then 404; its SKUs go with it."""
    response = client.delete("/products/7")
    assert response.status_code == 204 and response.content == b""
    assert "content-type" not in response.headers
    assert_problem(client.get("/products/7"), 404, "not-found")
    assert_problem(client.delete("/products/7"), 404, "not-found")


def test_health_and_ready(client: TestClient) -> None:
    """/health is up while the process runs; /ready when the database answers."""
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_unknown_route_and_wrong_method_are_problems(client: TestClient) -> None:
    """404 and 405 answer in problem+json too; 405 says what is allowed."""
    body = assert_problem(client.get("/nowhere"), 404, "not-found")
    assert body["instance"] == "/nowhere"
    response = client.patch("/products/1", json={})
    body = assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "DELETE, GET, HEAD, PUT"
