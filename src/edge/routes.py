"""What a route declares, read once: the single source the edge, the metrics and the
OpenAPI document read (the edge knows no resource).

A handler declares what lihil cannot say about it with `@operation(...)`, beside it: its
operation id, summary, the problems it answers (a write lists `Unauthorized`: the edge asks
it for a token), the Location its 201 points to. Its integer parameters (path, or query with
`Param("query")`) are read from its signature. `RouteTable` compiles every route of an app
once (like starlette's `compile_path`) and answers, per request, with one match: the
route, its template, its methods, the endpoint's declaration and integer parameters.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from src.errors import AppError, Unauthorized

F = TypeVar("F", bound=Callable[..., Any])
# What a cacheable GET's answer depends on, from its path and query parameters: the tags
# a change must name to drop it from the response cache (src/edge/cache.py).
CacheTags = Callable[[dict[str, str], dict[str, str]], Iterable[str]]


@dataclass(frozen=True)
class Operation:
    """What lihil cannot say about an endpoint: its id, summary, the problems it answers."""

    operation_id: str
    summary: str
    problems: tuple[type[AppError], ...]
    content_type: str | None = None  # a success body that is text, not JSON
    location: str | None = None  # what a 201's Location names, e.g. "/products/{product_id}"
    cache: CacheTags | None = None  # a GET whose answers the response cache may keep

    @property
    def needs_token(self) -> bool:
        """A write: the edge asks it for a bearer token (and limits its rate)."""
        return Unauthorized in self.problems


def operation(
    operation_id: str,
    summary: str,
    *problems: type[AppError],
    content_type: str | None = None,
    location: str | None = None,
    cache: CacheTags | None = None,
) -> Callable[[F], F]:
    """Declares a handler's operation, beside the handler:

    @operation("getBrand", "Get a brand", NotFound, InvalidRequest, DatabaseUnavailable)
    async def get_brand(...): ...
    """

    def declare(handler: F) -> F:
        spec = Operation(operation_id, summary, problems, content_type, location, cache)
        handler.__operation__ = spec  # type: ignore[attr-defined]
        return handler

    return declare


def declared_operation(handler: Callable[..., Any]) -> Operation | None:
    return getattr(handler, "__operation__", None)


@dataclass(frozen=True)
class Endpoint:
    """One method of one route, as the edge checks it before calling it."""

    operation: Operation | None
    # (location, name) of each integer parameter: path ones, and query ones
    integers: tuple[tuple[str, str], ...] = ()

    @property
    def needs_token(self) -> bool:
        return self.operation is not None and self.operation.needs_token

    @property
    def cache(self) -> CacheTags | None:
        return self.operation.cache if self.operation is not None else None


def integer_parameters(handler: Callable[..., Any], template: str) -> tuple[tuple[str, str], ...]:
    """The handler's int parameters: those named in the path template, and query ones."""
    in_path = set(re.findall(r"{(\w+)}", template))
    hints = get_type_hints(handler, include_extras=True)
    found = []
    for name in inspect.signature(handler).parameters:
        hint = hints.get(name)
        base: Any = hint
        metadata: tuple[Any, ...] = ()
        if get_origin(hint) is Annotated:
            base, *rest = get_args(hint)
            metadata = tuple(rest)
        if base is not int:
            continue
        if name in in_path:
            found.append(("path", name))
        elif any(getattr(meta, "source", None) == "query" for meta in metadata):
            found.append(("query", name))
    return tuple(found)


@dataclass
class Resource:
    """One route of the app, compiled once."""

    route: Any  # a lihil Route or WebSocketRoute (both are ASGI apps with `match`)
    template: str
    websocket: bool
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    allow: str = ""  # the Allow header's value (HEAD wherever GET is)

    @classmethod
    def of(cls, route: Any, websocket: bool) -> Resource:
        template = str(route.path)
        resource = cls(route, template, websocket)
        for method, endpoint in getattr(route, "endpoints", {}).items():
            handler = getattr(endpoint, "unwrapped_func", endpoint)
            resource.endpoints[method] = Endpoint(
                declared_operation(handler), integer_parameters(handler, template)
            )
        methods = set(resource.endpoints)
        resource.allow = ", ".join(sorted(methods | {"HEAD"} if "GET" in methods else methods))
        return resource

    def endpoint(self, method: str) -> Endpoint | None:
        """The endpoint serving `method` (HEAD is served as GET)."""
        return self.endpoints.get("GET" if method == "HEAD" else method)


class RouteTable:
    """Every route of an app, and which one serves a path: a dict lookup for paths without
    parameters, one regex per parameterized route otherwise."""

    def __init__(self, http: Iterable[Any], websocket: Iterable[Any]) -> None:
        self.resources = [Resource.of(r, False) for r in http]
        self.resources += [Resource.of(r, True) for r in websocket]
        self._static: dict[tuple[str, bool], Resource] = {}
        self._dynamic: list[tuple[re.Pattern[str], Resource]] = []
        for resource in self.resources:
            if "{" in resource.template:
                self._dynamic.append((resource.route.path_regex, resource))
            else:
                self._static.setdefault((resource.template, resource.websocket), resource)

    def match(self, path: str, websocket: bool) -> tuple[Resource, dict[str, str]] | None:
        """The resource serving `path` (HTTP or WebSocket) and its path parameters."""
        resource = self._static.get((path, websocket))
        if resource is not None:
            return resource, {}
        for regex, resource in self._dynamic:
            if resource.websocket is websocket and (m := regex.match(path)):
                return resource, m.groupdict()
        return None
