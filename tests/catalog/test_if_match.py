"""No lost updates (API.md "The catalog a shop can run"): PUT and DELETE of brands and
products honour If-Match with an ETag from a GET; a stale one is 412 and changes nothing."""

import pytest
from lihil.vendors import TestClient

from tests.catalog.test_routes import assert_problem

WRITES = [
    ("/brands/4", {"brand_name": "Renamed"}),
    ("/products/4", {"product_name": "Renamed", "brand_id": 2}),
]


@pytest.mark.parametrize(("path", "body"), WRITES)
def test_a_current_tag_writes_and_a_stale_one_is_412(
    client: TestClient, path: str, body: dict[str, object]
) -> None:
    """Two clients read the same version; the first write wins, the second is refused."""
    tag = client.get(path).headers["etag"]
    assert client.put(path, json=body, headers={"If-Match": tag}).status_code == 200
    after_first = client.get(path)
    lost = {**body, next(iter(body)): "Lost update"}
    problem = assert_problem(
        client.put(path, json=lost, headers={"If-Match": tag}), 412, "precondition-failed"
    )
    assert "GET it again" in problem["detail"]
    assert client.get(path).json() == after_first.json()  # nothing changed
    assert_problem(client.delete(path, headers={"If-Match": tag}), 412, "precondition-failed")
    assert client.get(path).status_code == 200
    fresh = after_first.headers["etag"]
    assert client.put(path, json=body, headers={"If-Match": f'"x", {fresh}'}).status_code == 200


def test_star_and_no_header_write_unconditionally(client: TestClient) -> None:
    assert (
        client.put("/products/5", json=WRITES[1][1], headers={"If-Match": "*"}).status_code == 200
    )
    assert client.put("/products/5", json=WRITES[1][1]).status_code == 200


def test_a_weak_tag_never_matches(client: TestClient) -> None:
    """If-Match compares strongly (RFC 9110): W/"..." is a different version."""
    tag = client.get("/products/6").headers["etag"]
    response = client.put("/products/6", json=WRITES[1][1], headers={"If-Match": f"W/{tag}"})
    assert_problem(response, 412, "precondition-failed")


def test_if_match_on_a_missing_resource_is_404(client: TestClient) -> None:
    headers = {"If-Match": "*"}
    assert_problem(
        client.put("/products/999999", json=WRITES[1][1], headers=headers), 404, "not-found"
    )
    assert_problem(client.delete("/brands/999999", headers=headers), 404, "not-found")


def test_a_deleted_product_with_a_current_tag(client: TestClient) -> None:
    tag = client.get("/products/8").headers["etag"]
    assert client.delete("/products/8", headers={"If-Match": tag}).status_code == 204
    assert client.get("/products/8").status_code == 404
