"""The published OpenAPI document: lihil's generated schema, finished by hand in one place.

lihil builds paths, parameters (with their bounds), tags and body schemas from the route
signatures and our Structs. It does not let us set operation ids, and what it says about
errors is wrong for this service (LIHIL TRAP: `type_` problem schemas, a bogus "200" next to
201/204, a 422 `InvalidRequestErrors` on every route). Each handler declares what lihil
cannot say with `@operation(...)` (`src.edge.routes`), beside it; `finish_openapi` rewrites
exactly those parts from the declarations, so the document says what goes over the wire.
The tags come from the components that own the operations.
"""

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from lihil import Lihil

from src.compat.lihil import generated_openapi
from src.edge.routes import Operation, declared_operation
from src.errors import Problem

REF = "#/components/schemas/{name}"
PROBLEM_REF = {"$ref": REF.format(name="Problem")}


def declared_operations(routes: Iterable[Any]) -> dict[tuple[str, str], Operation]:
    """(method, path) -> Operation for every endpoint of `routes` that declares one."""
    found = {}
    for route in routes:
        for method, endpoint in getattr(route, "endpoints", {}).items():
            spec = declared_operation(endpoint.unwrapped_func)
            if spec is not None:
                found[(method.lower(), route.path)] = spec
    return found


SUCCESS_DESCRIPTIONS = {"200": "OK.", "201": "Created.", "204": "Deleted; no body."}
POSITION_SCHEMA = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
# A cacheable read may ask to reflect at least a change (a write's Catalog-Position).
POSITION_PARAMETER = {
    "name": "Catalog-Position",
    "in": "header",
    "required": False,
    "description": "Answer with at least this change in (a write's Catalog-Position): the "
    "server's feed reads the database for it first, or the server reads the database. A "
    "position beyond every change recorded is 422.",
    "schema": POSITION_SCHEMA,
}
POSITION_HEADERS = {
    "read": "The catalog feed's position this answer reflects.",
    "write": "The catalog feed's position of this write's change: send it as "
    "Catalog-Position to read it back from any worker.",
}


def problem_schemas() -> dict[str, Any]:
    """Problem and FieldError as JSON Schema, from the Structs the server encodes."""
    _, components = msgspec.json.schema_components([Problem], ref_template=REF)
    return components


def _finish_operation(spec: Operation, op: dict[str, Any]) -> dict[str, Any]:
    description = op.get("description") or ""
    # lihil lists a bogus "200" beside 201 and 204: the highest 2xx is the real one.
    code = max(c for c in op["responses"] if c.startswith("2"))
    success = {code: op["responses"][code]}
    for code, response in success.items():
        response["description"] = SUCCESS_DESCRIPTIONS[code]
        if spec.content_type:
            response["content"] = {spec.content_type: {"schema": {"type": "string"}}}
        headers = {}
        if code == "201" and spec.location:
            headers["Location"] = {
                "description": f"The new resource's URL, {spec.location}.",
                "schema": {"type": "string"},
            }
        if spec.cache is not None or spec.needs_token:
            kind = "read" if spec.cache is not None else "write"
            headers["Catalog-Position"] = {
                "description": POSITION_HEADERS[kind],
                "schema": POSITION_SCHEMA,
            }
        if headers:
            response["headers"] = headers
    described: dict[str, list[str]] = {}  # one status may stand for several problems
    for error in sorted(spec.problems, key=lambda e: e.status):
        described.setdefault(str(error.status), []).append(error.__doc__ or error.title)
    problems = {
        status: {
            "description": " ".join(" ".join(descriptions).split()),
            "content": {"application/problem+json": {"schema": PROBLEM_REF}},
        }
        for status, descriptions in described.items()
    }
    finished: dict[str, Any] = {
        "tags": op["tags"],
        "summary": spec.summary,
        "description": description,
        "operationId": spec.operation_id,
    }
    params = [_finish_parameter(p) for p in op.get("parameters", ())]
    if spec.cache is not None:  # the edge reads it (src/edge: cacheable GETs)
        params.append(POSITION_PARAMETER)
    if params:
        finished["parameters"] = params
    if "requestBody" in op:
        finished["requestBody"] = op["requestBody"]
    if spec.needs_token:  # the operations the edge asks a token of
        finished["security"] = [{"bearerAuth": []}]
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


def finish_openapi(
    generated: dict[str, Any],
    operations: dict[tuple[str, str], Operation],
    tags: Sequence[dict[str, str]],
) -> dict[str, Any]:
    """lihil's document with our operation ids, summaries, problems and bounds."""
    paths: dict[str, Any] = {}
    for path, item in generated["paths"].items():
        undeclared = [method for method in item if (method, path) not in operations]
        if undeclared:
            raise RuntimeError(f"declare {undeclared} {path} with @src.edge.routes.operation")
        finished = {
            method: _finish_operation(operations[(method, path)], op) for method, op in item.items()
        }
        if finished:  # lihil leaves empty items for routes kept out of the schema
            paths[path] = finished
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
        "tags": sorted(tags, key=lambda t: t["name"]),
        "paths": paths,
        "components": {
            "schemas": {**schemas, **problem_schemas()},
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "HS256 JWT with `exp` and `aud` (JWT_AUDIENCE); "
                    "`python -m scripts.token` mints one.",
                }
            },
        },
    }


def openapi_document(app: Lihil, tags: Sequence[dict[str, str]]) -> dict[str, Any]:
    """The finished document for an app (works offline: no server, no database)."""
    generated: dict[str, Any] = msgspec.to_builtins(generated_openapi(app))
    return finish_openapi(generated, declared_operations(app.routes), tags)
