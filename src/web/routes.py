"""What the app serves besides the API: the live page, the docs page and the contract
documents."""

import html
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from lihil import Route
from lihil.vendors import Response
from swagger_ui_bundle import swagger_ui_path

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


# --- the docs page ------------------------------------------------------------------------
# LIHIL TRAP (the docs page loads Swagger UI from a CDN): lihil's own /docs
# (lihil/oas/doc_ui.py) loads swagger-ui-bundle.js and swagger-ui.css from cdn.jsdelivr.net,
# so without internet it is a blank page; its /problems page loads jQuery and Bootstrap the
# same way (and describes lihil's `type_` problems, not ours). src.app.create_app leaves all
# of lihil's pages out; /docs is this page, its assets served from the files the PyPI package
# swagger-ui-bundle-v2 ships (Swagger UI 5: it renders OpenAPI 3.1, Swagger UI 4 does not).
SWAGGER_UI = Path(swagger_ui_path)  # .../vendor/swagger-ui-<version>
# The URL names Swagger UI's version: a new version is a new URL, so the files never change
# under one and browsers may keep them for a year without asking again.
ASSETS_PATH = f"/docs/assets/{SWAGGER_UI.name}"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
DOCS_TITLE = "Catalog API"

# BaseLayout: the operations only, no top bar asking for another document's URL.
# persistAuthorization keeps the bearer token given to "Authorize" across reloads (in the
# browser's localStorage); validatorUrl null: no badge fetched from validator.swagger.io.
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{openapi}",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  deepLinking: true,
  persistAuthorization: true,
  validatorUrl: null,
}});
</script>
</body>
</html>
"""


def docs_page(openapi_path: str) -> Route:
    """GET /docs: Swagger UI over `openapi_path`, every byte of it from this service."""
    page = DOCS_PAGE.format(
        title=html.escape(DOCS_TITLE), assets=ASSETS_PATH, openapi=openapi_path
    ).encode()

    async def docs() -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    route = Route("/docs", in_schema=False)
    route.get(docs)
    return route


def _asset_route(name: str, media_type: str) -> Route:
    """GET /docs/assets/swagger-ui-<version>/<name>: the package's file, read on first use."""
    file = SWAGGER_UI / name
    if not file.is_file():  # a package that no longer ships it: fail at start-up, not later
        raise RuntimeError(f"swagger-ui-bundle-v2 ships no {file}")
    read = cache(file.read_bytes)

    async def asset() -> Response:
        return Response(read(), media_type=media_type, headers=IMMUTABLE)

    route = Route(f"{ASSETS_PATH}/{name}", in_schema=False)
    route.get(asset)
    return route


def build_page_routes(openapi: Callable[[], Any], asyncapi: Callable[[], Any]) -> list[Route]:
    """The page at / and /web_sockets.html; /openapi, /docs (with its assets) and /asyncapi."""
    routes = [Route("/", in_schema=False), Route("/web_sockets.html", in_schema=False)]
    for route in routes:
        route.get(live_page)
    docs = [docs_page("/openapi"), *(_asset_route(n, t) for n, t in ASSETS.items())]
    return [*routes, _json_route("/openapi", openapi), *docs, _json_route("/asyncapi", asyncapi)]
