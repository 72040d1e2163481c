"""Bytes no schema-driven fuzzer sends: each gets a clear 4xx problem, never a 500, and
nothing is written."""

from collections.abc import Iterator

import msgspec
import pytest
from lihil.vendors import TestClient

from src.app import create_app
from src.config import Settings
from tests.catalog.test_routes import assert_problem
from tests.helpers import AUTH

GOOD = b'{"product_name": "Kettle", "brand_id": 1}'


@pytest.fixture
def strict_client(client: TestClient) -> TestClient:
    """The app with server exceptions turned into responses, as a real server sends them."""
    client.raise_server_exceptions = False
    return client


def products(client: TestClient) -> int:
    page = client.get("/products?limit=100&brand_id=1").json()
    return len(page["items"])


@pytest.mark.parametrize(
    ("body", "status", "type_", "says"),
    [
        (b'{"product_name": "a\\u0000b", "brand_id": 1}', 422, "invalid-request", "product_name"),
        (b'{"product_name": "\xff\xfe", "brand_id": 1}', 422, "invalid-request", "UTF-8"),
        (b'{"product_name": "caf\xe9", "brand_id": 1}', 422, "invalid-request", "UTF-8"),
        (b"[" * 1000 + b"]" * 1000, 422, "invalid-request", "nested"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, 422, "invalid-request", "nested"),
        (
            b'{"product_name": "x", "brand_id": 1' + b"0" * 5000 + b"}",
            422,
            "invalid-request",
            "out of range",
        ),
        (b'{"product_name": "x", "brand_id": 1e999}', 422, "invalid-request", "out of range"),
        (b"\x00\x01\x02", 422, "invalid-request", "not valid JSON"),
        (b"", 422, "invalid-request", "product"),  # no body at all: missing
        (
            b'{"product_name": "x", "brand_id": 1} trailing',
            422,
            "invalid-request",
            "not valid JSON",
        ),
    ],
)
@pytest.mark.parametrize("method_path", [("POST", "/products"), ("PUT", "/products/5")])
def test_bad_bytes_are_4xx_problems_and_write_nothing(
    strict_client: TestClient,
    method_path: tuple[str, str],
    body: bytes,
    status: int,
    type_: str,
    says: str,
) -> None:
    method, path = method_path
    before, product_5 = products(strict_client), strict_client.get("/products/5").json()
    response = strict_client.request(
        method, path, content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, status, type_)
    assert says in response.text, problem
    assert products(strict_client) == before
    assert strict_client.get("/products/5").json() == product_5


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_declared_json_is_415(
    strict_client: TestClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = strict_client.post("/products", content=GOOD, headers=headers)
    problem = assert_problem(response, 415, "unsupported-media-type")
    assert "application/json" in problem["detail"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_in_any_spelling_of_its_media_type_is_accepted(
    strict_client: TestClient, content_type: str
) -> None:
    response = strict_client.post("/products", content=GOOD, headers={"content-type": content_type})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "query", ["limit=5&limit=6", "brand_id=1&brand_id=1", "after=0&limit=3&after=9"]
)
def test_a_repeated_query_parameter_is_refused_by_name(
    strict_client: TestClient, query: str
) -> None:
    response = strict_client.get(f"/products?{query}")
    problem = assert_problem(response, 422, "invalid-request")
    name = query.split("&")[-1].split("=")[0]
    assert problem["errors"] == [
        {"location": "query", "field": name, "message": "given more than once; give it once"}
    ]


@pytest.fixture
def small_body_client(settings: Settings) -> Iterator[TestClient]:
    limited = msgspec.structs.replace(settings, MAX_BODY_BYTES=64)
    with TestClient(create_app(limited), raise_server_exceptions=False, headers=AUTH) as c:
        yield c


def test_a_body_over_the_limit_is_413_from_its_length(small_body_client: TestClient) -> None:
    body = b'{"product_name": "' + b"x" * 100 + b'", "brand_id": 1}'
    response = small_body_client.post(
        "/products", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 413, "body-too-large")
    assert problem["detail"] == "the body is larger than 64 bytes (MAX_BODY_BYTES)"


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(small_body_client: TestClient) -> None:
    """No Content-Length: the body is counted as it arrives, and refused past the limit."""

    def chunks() -> Iterator[bytes]:
        yield from (b'{"product_name": "', b"x" * 50, b"x" * 50, b'", "brand_id": 1}')

    response = small_body_client.post(
        "/products", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "body-too-large")
    assert small_body_client.get("/products/1001").status_code == 404  # nothing written


@pytest.mark.parametrize(
    "path", ["/products/1.0", "/products/1e3", "/brands/+3", "/products/%D9%A3"]
)
def test_an_id_not_written_in_digits_is_422(strict_client: TestClient, path: str) -> None:
    """ "1.0" answered product 1 and "1e3" product 1000: lenient reading of an int."""
    for method in ("GET", "PUT", "DELETE"):
        response = strict_client.request(method, path, json={"product_name": "x", "brand_id": 1})
        if method != "GET" and path.startswith("/brands"):
            continue  # no writes on brands: 405 comes first
        problem = assert_problem(response, 422, "invalid-request")
        assert problem["errors"][0]["location"] == "path", problem
    assert strict_client.get("/products/1000").json()["product_name"]  # still there
