"""The published OpenAPI document: lihil's generated schema, finished by hand in one place.

lihil builds paths, parameters (with their bounds) and body schemas from the route
signatures and our Structs. It does not let us set operation ids, and what it says about
errors is wrong for this service (LIHIL TRAP: `type_` problem schemas, a bogus "200" next to
201/204, a 422 `InvalidRequestErrors` on every route). `finish_openapi` rewrites exactly
those parts from the table below, so the document says what goes over the wire.
"""

from dataclasses import dataclass
from typing import Any

import msgspec
from lihil import Lihil

from src.errors import Problem

REF = "#/components/schemas/{name}"
PROBLEM_REF = {"$ref": REF.format(name="Problem")}


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    tag: str
    problems: tuple[int, ...]


DATA = (422, 503)  # every data endpoint: bad input, database down
WRITE = (409, 422, 503)  # writes may also name a brand that does not exist
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("get", "/time"): Operation("getTime", "Server time", "service", ()),
    ("get", "/health"): Operation("getHealth", "Liveness", "service", ()),
    ("get", "/ready"): Operation("getReady", "Readiness", "service", (503,)),
    ("get", "/brands"): Operation("listBrands", "List brands", "brands", (503,)),
    ("get", "/brands/{brand_id}"): Operation("getBrand", "Get a brand", "brands", (404, *DATA)),
    ("get", "/products"): Operation("listProducts", "List products", "products", DATA),
    ("post", "/products"): Operation("createProduct", "Create a product", "products", WRITE),
    ("post", "/product"): Operation(
        "createProductTutorial", "Create a product (tutorial path)", "products", WRITE
    ),
    ("get", "/products/{product_id}"): Operation(
        "getProduct", "Get a product", "products", (404, *DATA)
    ),
    ("put", "/products/{product_id}"): Operation(
        "replaceProduct", "Replace a product", "products", (404, *WRITE)
    ),
    ("delete", "/products/{product_id}"): Operation(
        "deleteProduct", "Delete a product", "products", (404, *DATA)
    ),
}

PROBLEM_DESCRIPTIONS = {
    404: "Not found (`not-found`).",
    409: "`unknown-brand`: brand_id names no brand (the `errors` entry says so).",
    422: "`invalid-request`: one `errors` entry per bad field (location, field, message).",
    503: "The database did not answer (`database-unavailable`); retry after `Retry-After`.",
}
SUCCESS_DESCRIPTIONS = {"200": "OK.", "201": "Created.", "204": "Deleted; no body."}

TAGS = [
    {"name": "brands", "description": "The catalog's brands (read-only)."},
    {"name": "products", "description": "Products: read, page through, create, replace, delete."},
    {"name": "service", "description": "Server time, liveness and readiness."},
]


def problem_schemas() -> dict[str, Any]:
    """Problem and FieldError as JSON Schema, from the Structs the server encodes."""
    _, components = msgspec.json.schema_components([Problem], ref_template=REF)
    return components


def _finish_operation(method: str, path: str, op: dict[str, Any]) -> dict[str, Any]:
    spec = OPERATIONS[(method, path)]
    description = op.get("description") or ""
    # lihil lists a bogus "200" beside 201 and 204: the highest 2xx is the real one.
    code = max(c for c in op["responses"] if c.startswith("2"))
    success = {code: op["responses"][code]}
    for code, response in success.items():
        response["description"] = SUCCESS_DESCRIPTIONS[code]
        if code == "201":
            response["headers"] = {
                "Location": {
                    "description": "The new product's URL, /products/{product_id}.",
                    "schema": {"type": "string"},
                }
            }
    problems = {
        str(code): {
            "description": PROBLEM_DESCRIPTIONS[code],
            "content": {"application/problem+json": {"schema": PROBLEM_REF}},
        }
        for code in spec.problems
    }
    finished: dict[str, Any] = {
        "tags": [spec.tag],
        "summary": spec.summary,
        "description": description,
        "operationId": spec.operation_id,
    }
    if params := op.get("parameters"):
        finished["parameters"] = [_finish_parameter(p) for p in params]
    if "requestBody" in op:
        finished["requestBody"] = op["requestBody"]
    finished["responses"] = {**success, **problems}
    return finished


def _finish_parameter(param: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent or an integer, never JSON null."""
    schema = param["schema"]
    choices = schema.get("oneOf") or schema.get("anyOf")
    if choices and not param.get("required"):
        (schema,) = [c for c in choices if c.get("type") != "null"]
    finished = {**param, "schema": schema}
    if "description" in schema:
        finished["description"] = schema["description"]
    return finished


def finish_openapi(generated: dict[str, Any]) -> dict[str, Any]:
    """lihil's document with our operation ids, tags, summaries, problems and bounds."""
    paths: dict[str, Any] = {}
    for path, item in generated["paths"].items():
        unknown = [method for method in item if (method, path) not in OPERATIONS]
        if unknown:
            raise RuntimeError(f"add {unknown} {path} to src.openapi.OPERATIONS")
        operations = {method: _finish_operation(method, path, op) for method, op in item.items()}
        if operations:  # lihil leaves empty items for routes kept out of the schema
            paths[path] = operations
    missing = set(OPERATIONS) - {(m, p) for p, item in paths.items() for m in item}
    if missing:
        raise RuntimeError(f"OPERATIONS names routes the app does not have: {sorted(missing)}")
    schemas = {
        name: schema
        for name, schema in generated["components"]["schemas"].items()
        if name not in ("ProblemDetail", "ValidationProblem", "InvalidRequestErrors")
    }
    return {
        "openapi": generated["openapi"],
        "info": {
            **generated["info"],
            "description": "A real-time products catalog. Every error is RFC 9457 "
            "`application/problem+json`. WebSocket endpoints are described at /asyncapi.",
        },
        "tags": TAGS,
        "paths": paths,
        "components": {"schemas": {**schemas, **problem_schemas()}},
    }


def openapi_document(app: Lihil) -> dict[str, Any]:
    """The finished document for an app (works offline: no server, no database)."""
    generated: dict[str, Any] = msgspec.to_builtins(app.genereate_oas())
    return finish_openapi(generated)
