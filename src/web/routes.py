"""The live page, served at / and at the tutorial's /web_sockets.html."""

from pathlib import Path

from lihil import Route
from lihil.vendors import Response

PAGE = Path(__file__).with_name("index.html")


async def live_page() -> Response:
    """The live page: users online, a session room, the broadcast feed."""
    return Response(PAGE.read_bytes(), media_type="text/html; charset=utf-8")


def build_page_routes() -> list[Route]:
    routes = [Route("/", in_schema=False), Route("/web_sockets.html", in_schema=False)]
    for route in routes:
        route.get(live_page)
    return routes
