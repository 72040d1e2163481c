"""The docs page (/docs) with no network: real headless Chromium (Debian's /usr/bin/chromium)
against real uvicorn, every request to a host other than 127.0.0.1 aborted, so the page
works only from what the service itself serves."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from lihil.vendors import TestClient
from playwright.sync_api import BrowserContext, Route, expect

from src.web.routes import ASSETS, ASSETS_PATH, SWAGGER_UI
from tests.helpers import AUTH, TOKEN, LiveServer
from tests.web.conftest import WAIT_MS
from tests.web.test_page import Visit

LOCAL = "127.0.0.1"


@dataclass
class Offline(Visit):
    """A page whose browser context reaches 127.0.0.1 only, and what it saw."""

    outside: list[str] = field(default_factory=list)  # requests aborted: not to 127.0.0.1


@pytest.fixture
def offline(new_context: Callable[[], BrowserContext]) -> Offline:
    context = new_context()
    offline = Offline(context.new_page())

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).hostname == LOCAL:
            route.continue_()
        else:
            offline.outside.append(route.request.url)
            route.abort("internetdisconnected")

    context.route(lambda url: True, only_local)
    offline.watch()
    return offline


def served_operations(live_server: LiveServer) -> list[tuple[str, str, str]]:
    """(tag, operationId, summary) of every operation in the served /openapi."""
    document: dict[str, Any] = httpx.get(f"{live_server.http}/openapi").json()
    return [
        (op["tags"][0], op["operationId"], op["summary"])
        for item in document["paths"].values()
        for op in item.values()
    ]


def expect_only_local(offline: Offline) -> None:
    assert offline.outside == []
    assert offline.requests and all(urlsplit(u).hostname == LOCAL for u in offline.requests)
    assert offline.errors == []


@pytest.mark.browser
def test_docs_lists_every_operation_with_no_network(
    offline: Offline, shared_server: LiveServer
) -> None:
    """Swagger UI renders /openapi from the service's own assets: every operation shows
    with its summary; nothing is asked of another host; no console error."""
    page = offline.page
    operations = served_operations(shared_server)
    assert {"List brands", "Create a product"} <= {summary for _, _, summary in operations}
    page.goto(f"{shared_server.http}/docs")
    expect(page.locator(".opblock")).to_have_count(len(operations), timeout=WAIT_MS)
    for tag, operation_id, summary in operations:
        block = page.locator(f"#operations-{tag}-{operation_id}")
        expect(block.locator(".opblock-summary-description")).to_have_text(summary)
    expect(page.locator(".auth-wrapper .authorize")).to_be_visible()

    base = f"{shared_server.http}{ASSETS_PATH}"
    assert f"{base}/swagger-ui-bundle.js" in offline.requests
    assert f"{base}/swagger-ui.css" in offline.requests
    assert f"{shared_server.http}/openapi" in offline.requests
    expect_only_local(offline)


@pytest.mark.browser
def test_docs_authorize_sends_the_bearer_token(offline: Offline, shared_server: LiveServer) -> None:
    """A token given to "Authorize" goes with "Try it out": a delete (of a product the
    test made) answers 204."""
    made = httpx.post(
        f"{shared_server.http}/products",
        json={"product_name": "to delete from /docs", "brand_id": 1},
        headers=AUTH,
    )
    assert made.status_code == 201, made.text
    product_id = made.json()["product_id"]
    page = offline.page
    page.goto(f"{shared_server.http}/docs")
    page.click(".auth-wrapper .authorize")
    page.fill("#auth-bearer-value", TOKEN)
    page.click(".auth-btn-wrapper .authorize")
    page.click(".auth-btn-wrapper .btn-done")

    block = page.locator("#operations-products-deleteProduct")
    block.locator(".opblock-summary-control").click()
    block.locator(".try-out__btn").click()
    block.locator('input[placeholder="product_id"]').fill(str(product_id))
    with page.expect_request(lambda sent: sent.method == "DELETE") as sent:
        block.locator(".execute").click()
    assert sent.value.headers.get("authorization") == f"Bearer {TOKEN}"
    expect(block.locator(".live-responses-table tbody .response-col_status")).to_have_text("204")
    assert httpx.get(f"{shared_server.http}/products/{product_id}").status_code == 404
    expect_only_local(offline)


def test_docs_assets_are_served_with_their_types_and_cached_for_good(
    client: TestClient,
) -> None:
    """/docs names only the service's own URLs; each asset is the package's file, with its
    content type and a year-long immutable cache (its URL names Swagger UI's version);
    HEAD answers the same head without a body. lihil's /problems page is not served."""
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "//" not in page.text.replace("<!doctype html>", "")  # no absolute URL at all
    assert 'url: "/openapi"' in page.text

    for name, media_type in ASSETS.items():
        url = f"{ASSETS_PATH}/{name}"
        assert url in page.text
        got = client.get(url)
        assert got.status_code == 200, url
        assert got.headers["content-type"] == media_type
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert got.content == (SWAGGER_UI / name).read_bytes()
        head = client.head(url)
        assert head.status_code == 200, url
        assert head.headers["content-type"] == media_type
        assert head.headers["content-length"] == str(len(got.content))
        assert head.content == b""

    assert client.get("/problems").status_code == 404
    assert client.get(f"{ASSETS_PATH}/index.html").status_code == 404
