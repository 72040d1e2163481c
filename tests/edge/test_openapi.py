"""The published contract: OpenAPI and AsyncAPI documents, served and committed."""

import json
from typing import Any

import pytest
from lihil import WebSocketRoute
from lihil.vendors import TestClient

from scripts.export_schema import DOCS, documents, render
from src.app import create_app
from src.edge.openapi import declared_operations
from tests.helpers import make_settings

ROUTES = create_app(make_settings()).app.routes  # type: ignore[attr-defined]  # the Lihil
# What each handler declares beside it with @operation, (method, path) -> Operation.
OPERATIONS = declared_operations(ROUTES)


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    result: dict[str, Any] = json.loads((DOCS / "openapi.json").read_text())
    return result


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_committed_documents_match_the_code() -> None:
    """docs/*.json are what `make schema` writes now (run it after changing the API)."""
    for path, document in documents().items():
        assert path.read_text() == render(document), f"{path.name} is stale: run make schema"


def test_served_documents_match_the_committed_ones(client: TestClient) -> None:
    """GET /openapi and /asyncapi serve exactly the committed documents."""
    assert client.get("/openapi").json() == json.loads((DOCS / "openapi.json").read_text())
    assert client.get("/asyncapi").json() == json.loads((DOCS / "asyncapi.json").read_text())
    assert client.get("/docs").status_code == 200


def test_every_operation_is_named_tagged_and_described(openapi: dict[str, Any]) -> None:
    """Short unique camelCase operationIds, a tag, a summary and a description each."""
    ops = operations(openapi)
    assert {(m, p) for m, p, _ in ops} == set(OPERATIONS)
    ids = [op["operationId"] for _, _, op in ops]
    assert len(ids) == len(set(ids)) and all(i.isidentifier() and "_" not in i for i in ids)
    tags = {t["name"] for t in openapi["tags"]}
    for _, _, op in ops:
        assert op["tags"] and set(op["tags"]) <= tags
        assert op["summary"] and op["description"] and op["description"] != "Missing Description"


def test_no_bogus_or_empty_entries(openapi: dict[str, Any]) -> None:
    """No empty path items; 201/204 operations do not also advertise a 200."""
    assert all(openapi["paths"].values())
    for _, _, op in operations(openapi):
        successes = [code for code in op["responses"] if code.startswith("2")]
        assert len(successes) == 1, (op["operationId"], successes)
    assert "type_" not in json.dumps(openapi)


def test_problem_responses_use_the_wire_shape(openapi: dict[str, Any]) -> None:
    """Errors point at the RFC 9457 Problem schema, with `type` required."""
    problem = openapi["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance", "errors"}
    for method, path, op in operations(openapi):
        problems = {code for code in op["responses"] if code[0] in "45"}
        assert problems == {str(e.status) for e in OPERATIONS[(method, path)].problems}
        for code in problems:
            content = op["responses"][code]["content"]
            assert content == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }


def test_parameters_carry_their_bounds(openapi: dict[str, Any]) -> None:
    """Typed parameters with the bounds the server enforces; optional ones are never null."""
    params = {p["name"]: p for p in openapi["paths"]["/products"]["get"]["parameters"]}
    assert params["limit"]["schema"] | {"description": ""} == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "description": "",
    }
    assert params["brand_id"]["schema"]["type"] == "integer"
    assert params["after"]["schema"]["minimum"] == 0
    product_id = openapi["paths"]["/products/{product_id}"]["get"]["parameters"][0]
    assert product_id["required"] and product_id["schema"]["maximum"] == 2**31 - 1


def test_create_documents_201_with_location(openapi: dict[str, Any]) -> None:
    """POST /products answers 201 with a Location header and the product."""
    created = openapi["paths"]["/products"]["post"]["responses"]["201"]
    assert "Location" in created["headers"]
    assert created["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Product"
    }
    body = openapi["components"]["schemas"]["ProductIn"]
    assert body["required"] == ["product_name", "brand_id"]
    assert body["properties"]["product_name"]["maxLength"] == 200


def test_every_websocket_route_is_described_in_asyncapi() -> None:
    """A WebSocket route the AsyncAPI document does not describe (or a channel no route
    serves) fails here, as an undeclared HTTP operation fails the OpenAPI export."""
    asyncapi = json.loads((DOCS / "asyncapi.json").read_text())
    addresses = {c["address"] for c in asyncapi["channels"].values()}
    assert addresses == {r.path for r in ROUTES if isinstance(r, WebSocketRoute)}


def test_asyncapi_publishes_the_protocol_structs() -> None:
    """The WebSocket messages' schemas come from the Structs the server encodes."""
    asyncapi = json.loads((DOCS / "asyncapi.json").read_text())
    assert asyncapi["asyncapi"] == "3.0.0"
    welcome = asyncapi["components"]["schemas"]["Welcome"]
    assert welcome["properties"]["type"] == {"enum": ["welcome"]}
    assert set(welcome["required"]) == {"type", "session_id", "member_id", "users", "max_users"}
    for code in (1000, 1001, 1003, 1008, 1009, 1013, 4400, 4403, 4410, 4429):
        assert f"- {code}:" in asyncapi["info"]["description"]
