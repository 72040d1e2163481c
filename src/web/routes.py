"""What the app serves besides the API: the live page and the contract documents."""

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from lihil import Route
from lihil.vendors import Response

PAGE = Path(__file__).with_name("index.html")


async def live_page() -> Response:
    """The live page: users online, a session room, the broadcast feed, the live catalog."""
    return Response(PAGE.read_bytes(), media_type="text/html; charset=utf-8")


def _json_route(path: str, build: Callable[[], Any]) -> Route:
    """GET `path` answers `build()` as JSON, built and encoded once, on first request."""
    encoded = cache(lambda: msgspec.json.encode(build()))

    async def document() -> Response:
        return Response(encoded(), media_type="application/json")

    route = Route(path, in_schema=False)
    route.get(document)
    return route


def build_page_routes(openapi: Callable[[], Any], asyncapi: Callable[[], Any]) -> list[Route]:
    """The page at / and /web_sockets.html; /openapi (replacing lihil's) and /asyncapi."""
    routes = [Route("/", in_schema=False), Route("/web_sockets.html", in_schema=False)]
    for route in routes:
        route.get(live_page)
    # Matched before lihil's own /openapi route, which is appended at start-up.
    return [*routes, _json_route("/openapi", openapi), _json_route("/asyncapi", asyncapi)]
