"""The live page in real headless Chromium (Debian's /usr/bin/chromium) against real uvicorn.

Set PAGE_SCREENSHOT=/tmp/page.png to keep a screenshot of the two-browser test.
"""

import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.sync_api import (
    ConsoleMessage,
    Page,
    Request,
    Response,
    Route,
    WebSocket,
    expect,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from src.catalog import queries
from tests.helpers import AUTH, LiveServer, start_live_server
from tests.web.conftest import WAIT_MS

GOING_AWAY = r"1001 server shutting down"

pytestmark = pytest.mark.browser


def open_pages(new_page: Callable[[], Page], server: LiveServer) -> tuple[Page, Page]:
    a, b = new_page(), new_page()
    for page in (a, b):
        page.goto(f"{server.http}/")
    return a, b


@pytest.fixture
def pages(live_server: LiveServer, new_page: Callable[[], Page]) -> tuple[Page, Page]:
    """Two people on the live page of a server of the test's own."""
    return open_pages(new_page, live_server)


@pytest.fixture
def shared_pages(shared_server: LiveServer, new_page: Callable[[], Page]) -> tuple[Page, Page]:
    """Two people on the live page of the session's shared server."""
    return open_pages(new_page, shared_server)


@dataclass
class Visit:
    """One person on the live page, and what their browser saw from the start."""

    page: Page
    errors: list[str] = field(default_factory=list)  # console errors, uncaught, HTTP >= 400
    sockets: list[str] = field(default_factory=list)  # every WebSocket URL opened, in order
    requests: list[str] = field(default_factory=list)  # every HTTP request URL, in order
    # the text frames each /ws/catalog socket received, by URL
    frames: dict[str, list[str]] = field(default_factory=dict)

    @property
    def feeds(self) -> list[str]:
        """The URLs of the /ws/catalog sockets opened, in order."""
        return [url for url in self.sockets if "/ws/catalog" in url]

    def watch(self) -> None:
        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"console: {message.text}")

        def response(answer: Response) -> None:
            if answer.status >= 400:
                self.errors.append(f"{answer.status} {answer.url}")

        def websocket(socket: WebSocket) -> None:
            self.sockets.append(socket.url)
            if "/ws/catalog" in socket.url:
                frames = self.frames.setdefault(socket.url, [])
                socket.on("framereceived", lambda payload: frames.append(str(payload)))

        def request(sent: Request) -> None:
            self.requests.append(sent.url)

        self.page.on("console", console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("response", response)
        self.page.on("websocket", websocket)
        self.page.on("request", request)


def open_visit(new_page: Callable[[], Page], server: LiveServer) -> Visit:
    visit = Visit(new_page())
    visit.watch()
    visit.page.goto(f"{server.http}/")
    expect(visit.page.locator("#status-catalog")).to_have_text("catalog: live")
    expect(visit.page.locator("#product-rows tr")).not_to_have_count(0)
    # Set once: a reload of the page would lose it.
    visit.page.evaluate("() => { window.notReloaded = true; }")
    return visit


@pytest.fixture
def visit(live_server: LiveServer, new_page: Callable[[], Page]) -> Visit:
    """One person on the live page of a server of the test's own, its catalog loaded and
    live (on the first brand)."""
    return open_visit(new_page, live_server)


@pytest.fixture
def shared_visit(shared_server: LiveServer, new_page: Callable[[], Page]) -> Visit:
    """One person on the live page of the session's shared server, its catalog loaded and
    live (on the first brand)."""
    return open_visit(new_page, shared_server)


def join(page: Page, session_id: str, max_users: int) -> None:
    page.fill("#session-id", session_id)
    page.fill("#max-users", str(max_users))
    expect(page.locator("#join")).to_have_text("Join")
    page.click("#join")


# Status lines change faster than expect() polls: keep every text they show in window.statusLog.
RECORD_STATUS = """() => {
  window.statusLog = [];
  new MutationObserver((records) => {
    for (const record of records) window.statusLog.push(record.target.textContent);
  }).observe(document.getElementById("status"), { subtree: true, childList: true });
}"""


def wait_for_status(page: Page, pattern: str) -> None:
    """Wait until some status line has shown a text that fully matches the regex `pattern`."""
    try:
        page.wait_for_function(
            "(p) => window.statusLog.some((t) => new RegExp(`^(?:${p})$`).test(t))", arg=pattern
        )
    except PlaywrightTimeoutError:
        log = "\n".join(page.evaluate("() => window.statusLog"))
        raise AssertionError(f"no status {pattern!r}; the status lines showed:\n{log}") from None


def send(page: Page, box: str, text: str) -> None:
    page.fill(f"#{box}-text", text)
    page.click(f"#{box}-send")  # waits until the button is enabled (socket open)


def test_page_two_users_share_a_room_and_the_broadcast_feed(pages: tuple[Page, Page]) -> None:
    """Two browsers: users online 2, room count 2 / 5, room messages and broadcasts both ways."""
    a, b = pages
    for page in pages:
        expect(page.locator("#online")).to_have_text("2")
        expect(page.locator("#status-counter")).to_have_text("counter: connected")

    for page in pages:
        join(page, "demo-room", 5)
    for page in pages:
        expect(page.locator("#room-count")).to_have_text("2 / 5")
        expect(page.locator("#join")).to_have_text("Leave")

    send(a, "room", "hello from A <b>not bold</b>")
    expect(b.locator("#room-messages li").last).to_contain_text("hello from A <b>not bold</b>")
    expect(a.locator("#room-messages li.own")).to_contain_text("(you)hello from A")
    expect(b.locator("#room-messages li.own")).to_have_count(0)
    send(b, "room", "hi from B")
    expect(a.locator("#room-messages li").last).to_contain_text("hi from B")
    expect(a.locator("#room-messages li").last).not_to_have_class("own")

    send(a, "broadcast", "news for everyone")
    for page in pages:
        expect(page.locator("#broadcast-feed li").last).to_contain_text("news for everyone")

    if path := os.environ.get("PAGE_SCREENSHOT"):
        a.screenshot(path=path, full_page=True)

    b.click("#join")  # Leave
    expect(a.locator("#room-count")).to_have_text("1 / 5")
    expect(b.locator("#room-count")).to_have_text("–")
    b.close()
    expect(a.locator("#online")).to_have_text("1")


def test_page_full_room_shows_the_close_reason(shared_pages: tuple[Page, Page]) -> None:
    """A second member of a one-user room sees 4429 'session full (1/1)' and can join again."""
    a, b = shared_pages
    join(a, "solo", 1)
    expect(a.locator("#room-count")).to_have_text("1 / 1")

    join(b, "solo", 1)
    expect(b.locator("#status-room")).to_have_text("room: closed — 4429 session full (1/1)")
    expect(b.locator("#room-messages")).to_contain_text("session full (1/1)")
    expect(b.locator("#join")).to_have_text("Join")
    expect(a.locator("#room-count")).to_have_text("1 / 1")

    a.click("#join")  # Leave: now there is room for b
    join(b, "solo", 1)
    expect(b.locator("#room-count")).to_have_text("1 / 1")


def test_page_status_shows_the_drop_and_reconnects(
    pages: tuple[Page, Page], live_server: LiveServer, database_url: str
) -> None:
    """Server stops: 1001 and growing retry delays are shown; a new server is picked up."""
    a, _ = pages
    counter = a.locator("#status-counter")
    expect(a.locator("#online")).to_have_text("2")
    join(a, "comeback", 5)
    expect(a.locator("#room-count")).to_have_text("1 / 5")

    a.evaluate(RECORD_STATUS)
    live_server.process.stop(signal.SIGTERM)
    for name in ("counter", "room"):
        wait_for_status(a, rf"{name}: disconnected \({GOING_AWAY}\) — reconnecting in 0\.5 s")
    wait_for_status(a, r"counter: disconnected \(1006 connection lost\) — reconnecting in 1\.0 s")
    expect(a.locator("#online")).to_have_text("–")
    expect(a.locator("#room-count")).to_have_text("–")

    server, _ = start_live_server(database_url, port=live_server.port)
    try:
        expect(counter).to_have_text("counter: connected", timeout=20_000)
        expect(a.locator("#online")).to_have_text("2")
        expect(a.locator("#status-room")).to_have_text("room: connected", timeout=20_000)
        expect(a.locator("#room-count")).to_have_text("1 / 5")
    finally:
        server.stop(signal.SIGTERM)


# --- the catalog --------------------------------------------------------------------------

Product = dict[str, Any]


def run_sql(database_url: str, work: Callable[[asyncpg.Connection], Awaitable[object]]) -> None:
    """Plain SQL on a connection of its own, as another program would change the catalog
    (on another thread: sync Playwright's event loop is marked as running on this one)."""

    async def session() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await work(conn)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, session()).result(timeout=WAIT_MS / 1000)


def api(live_server: LiveServer) -> httpx.Client:
    """An HTTP client of the service for the test's own writes (the page only reads), with
    a token: catalog writes need one."""
    return httpx.Client(base_url=live_server.http, timeout=WAIT_MS / 1000, headers=AUTH)


def first_page(http: httpx.Client, brand_id: int) -> list[Product]:
    """The brand's first page over HTTP: all its products (the demo's brands have a few)."""
    page = http.get("/products", params={"brand_id": brand_id, "limit": 20}).json()
    assert page["next_after"] is None and 3 <= len(page["items"]) < 20
    items: list[Product] = page["items"]
    return items


def create(http: httpx.Client, name: str, brand_id: int) -> Product:
    answer = http.post("/products", json={"product_name": name, "brand_id": brand_id})
    assert answer.status_code == 201, answer.text
    product: Product = answer.json()
    return product


def show_brand(page: Page, brand_id: int) -> None:
    page.select_option("#brand-picker", str(brand_id))
    expect(page.locator("#status-catalog")).to_have_text("catalog: live")


def expect_products(page: Page, products: list[Product]) -> None:
    """The shown rows are exactly these products (id and name), in this order."""
    expect(page.locator("#product-rows td.id")).to_have_text(
        [str(p["product_id"]) for p in products]
    )
    expect(page.locator("#product-rows td:not(.id)")).to_have_text(
        [p["product_name"] for p in products]
    )


def row(page: Page, product: Product) -> Any:
    return page.locator(f'#product-rows tr[data-product-id="{product["product_id"]}"]')


def renamed(product: Product, name: str) -> Product:
    return {**product, "product_name": name}


def test_page_loads_with_no_console_error(shared_visit: Visit) -> None:
    """The page, its icon (inline: no /favicon.ico request) and the catalog load cleanly."""
    expect(shared_visit.page.locator("#brand-picker option")).to_have_count(100)
    expect(shared_visit.page.locator("#status-counter")).to_have_text("counter: connected")
    expect(shared_visit.page.locator("#status-broadcast")).to_have_text("broadcast: connected")
    assert not [url for url in shared_visit.requests if url.endswith("/favicon.ico")]
    assert shared_visit.errors == []


def test_page_catalog_shows_a_brand_and_products_created_over_http(
    shared_visit: Visit, shared_server: LiveServer
) -> None:
    """Pick a brand: its products; created ones appear without a reload, spilling over to
    the next page once the page is full; another brand's product never shows.
    (Shared server: writes products of its own in brands 3 and 4.)"""
    page = shared_visit.page
    with api(shared_server) as http:
        items = first_page(http, 3)
        show_brand(page, 3)
        expect_products(page, items)
        expect(page.locator("#page-next")).to_be_disabled()

        elsewhere = create(http, "Not this brand", 4)
        room = 20 - len(items)  # a page holds 20
        made = [create(http, f"Kettle {i}", 3) for i in range(room + 1)]
        expect_products(page, [*items, *made[:room]])
        page.click("#page-next")
        expect_products(page, made[room:])
        later = create(http, "Kettle <b>last</b>", 3)
        expect_products(page, [*made[room:], later])
        page.click("#page-previous")
        expect_products(page, [*items, *made[:room]])

    expect(row(page, elsewhere)).to_have_count(0)
    assert page.evaluate("() => window.notReloaded") is True
    assert shared_visit.errors == []


def test_page_catalog_applies_changes_that_come_while_the_page_loads(
    shared_visit: Visit, shared_server: LiveServer
) -> None:
    """A product created after the page's snapshot was read, whose frame arrives before the
    snapshot does, still shows: frames wait for the snapshot, then apply (no gap).
    (Shared server: writes a product of its own in brand 9.)"""
    page = shared_visit.page
    created: list[Product] = []
    with api(shared_server) as http:
        items = first_page(http, 9)

        def hold_the_snapshot(route: Route) -> None:
            snapshot = route.fetch()  # read now: the product below is not in it
            created.append(create(http, "Made while the page loads", 9))
            page.wait_for_function("() => window.catalogFeed.held > 0")  # its frame is in
            route.fulfill(response=snapshot)

        page.route("**/products?brand_id=9&*", hold_the_snapshot)
        show_brand(page, 9)
        expect_products(page, [*items, *created])
    assert len(created) == 1
    assert shared_visit.errors == []


def test_page_catalog_follows_plain_sql_updates_and_http_deletes(
    shared_visit: Visit, shared_server: LiveServer, shared_database_url: str
) -> None:
    """A rename in plain SQL shows; a product moved to another brand leaves, moved back it
    returns; a product deleted over HTTP disappears; a renamed brand is renamed in the picker.
    (Shared server: writes brand 5 and its first three demo products, one moved to brand 6
    and back.)"""
    page = shared_visit.page
    with api(shared_server) as http:
        items = first_page(http, 5)
        show_brand(page, 5)
        expect_products(page, items)
        first, moved, deleted = items[:3]

        run_sql(
            shared_database_url,
            lambda c: c.execute(
                "UPDATE product SET product_name = 'Renamed in SQL' WHERE product_id = $1",
                first["product_id"],
            ),
        )
        expect(row(page, first)).to_contain_text("Renamed in SQL")

        move = "UPDATE product SET brand_id = $2 WHERE product_id = $1"
        run_sql(shared_database_url, lambda c: c.execute(move, moved["product_id"], 6))
        expect(row(page, moved)).to_have_count(0)
        run_sql(shared_database_url, lambda c: c.execute(move, moved["product_id"], 5))
        expect_products(page, [renamed(first, "Renamed in SQL"), *items[1:]])

        assert http.delete(f"/products/{deleted['product_id']}").status_code == 204
        expect(row(page, deleted)).to_have_count(0)

    run_sql(
        shared_database_url,
        lambda c: c.execute("UPDATE brand SET brand_name = 'Renamed brand' WHERE brand_id = 5"),
    )
    expect(page.locator('#brand-picker option[value="5"]')).to_have_text("5 · Renamed brand")
    expect_products(page, [renamed(first, "Renamed in SQL"), moved, *items[3:]])
    assert page.evaluate("() => window.notReloaded") is True
    assert shared_visit.errors == []


def drop_the_server(visit: Visit, live_server: LiveServer, brand_id: int) -> tuple[Product, int]:
    """Show the brand, see a created product arrive (so the page has a change id), then stop
    the server; returns the product and the last change id the page received."""
    page = visit.page
    with api(live_server) as http:
        show_brand(page, brand_id)
        made = create(http, "Made before the drop", brand_id)
    expect(row(page, made)).to_contain_text("Made before the drop")
    last = page.evaluate("() => window.catalogFeed.lastId")
    assert isinstance(last, int)
    page.evaluate(RECORD_STATUS)
    live_server.process.stop(signal.SIGTERM)
    wait_for_status(page, rf"catalog: disconnected \({GOING_AWAY}\) — reconnecting in 0\.5 s")
    return made, last


def test_page_catalog_resumes_after_a_drop_from_the_last_change_it_saw(
    visit: Visit, live_server: LiveServer, database_url: str
) -> None:
    """The server stops; changes made in plain SQL meanwhile arrive once the page reconnects
    with ?after=<the last change id it saw>, without loading anything over HTTP again."""
    page = visit.page
    made, last = drop_the_server(visit, live_server, 7)
    loaded, opened = len(visit.requests), len(visit.feeds)
    run_sql(
        database_url,
        lambda c: c.execute(
            "UPDATE product SET product_name = 'Renamed while away' WHERE product_id = $1",
            made["product_id"],
        ),
    )
    deleted = min(int(r) for r in page.locator("#product-rows td.id").all_inner_texts())
    run_sql(database_url, lambda c: c.execute("DELETE FROM product WHERE product_id = $1", deleted))

    server, _ = start_live_server(database_url, port=live_server.port)
    try:
        expect(row(page, made)).to_contain_text("Renamed while away", timeout=20_000)
        expect(page.locator(f'#product-rows tr[data-product-id="{deleted}"]')).to_have_count(0)
        expect(page.locator("#status-catalog")).to_have_text("catalog: live")
    finally:
        server.stop(signal.SIGTERM)

    resumes = visit.feeds[opened:]  # one or more attempts, each from where it was
    assert resumes and set(resumes) == {f"{live_server.ws}/ws/catalog?after={last}"}
    assert not [u for u in visit.requests[loaded:] if "/products" in u or "/brands" in u]
    assert page.evaluate("() => window.notReloaded") is True


def test_page_catalog_reloads_when_the_feed_no_longer_has_its_place(
    visit: Visit, live_server: LiveServer, database_url: str
) -> None:
    """While the server is down, the changes after the page's last id are pruned: the resume
    closes 4410, so the page loads the brand's page over HTTP again and reconnects without
    `after`; the changes show."""
    page = visit.page
    made, last = drop_the_server(visit, live_server, 8)
    loaded, opened = len(visit.requests), len(visit.feeds)

    async def change_then_prune(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "UPDATE product SET product_name = 'Renamed, then pruned' WHERE product_id = $1",
            made["product_id"],
        )
        assert await queries.prune_changes(conn, older_than_s=0) > 0
        await conn.execute(
            "INSERT INTO product (product_name, brand_id) VALUES ('Added after pruning', 8)"
        )

    run_sql(database_url, change_then_prune)
    server, _ = start_live_server(database_url, port=live_server.port)
    try:
        wait_for_status(page, r"catalog: disconnected \(4410 .*reload.*\) — reconnecting in .*")
        expect(row(page, made)).to_contain_text("Renamed, then pruned", timeout=20_000)
        expect(page.locator("#product-rows td:not(.id)").last).to_have_text("Added after pruning")
        expect(page.locator("#status-catalog")).to_have_text("catalog: live")
    finally:
        server.stop(signal.SIGTERM)

    *resumes, fresh = visit.feeds[opened:]
    assert resumes and set(resumes) == {f"{live_server.ws}/ws/catalog?after={last}"}
    assert fresh == f"{live_server.ws}/ws/catalog"
    assert [u for u in visit.requests[loaded:] if "/products?brand_id=8" in u]
    assert page.evaluate("() => window.notReloaded") is True


# --- the product view ---------------------------------------------------------------------

Sku = dict[str, Any]


def execute(database_url: str, query: str, *args: object) -> None:
    """One statement in plain SQL, as another program would run it."""
    run_sql(database_url, lambda c: c.execute(query, *args))


def open_product(page: Page, product: Product) -> None:
    """Click the product's name in the catalog: its view opens, loaded and live."""
    row(page, product).get_by_role("button").click()
    expect(page.locator("#product-view")).to_be_visible()
    expect(page.locator("#product-name")).to_have_text(product["product_name"])
    expect(page.locator("#status-product")).to_have_text("product: live")


def sku_page(http: httpx.Client, product_id: int, after: int | None = None) -> dict[str, Any]:
    params = {"limit": 20} if after is None else {"limit": 20, "after": after}
    answer = http.get(f"/products/{product_id}/skus", params=params)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def price_text(sku: Sku) -> str:
    """The price as the page shows it, for a currency with cents (the demo's are EUR)."""
    assert sku["currency"] in {"EUR", "USD"}
    return f"{sku['currency']} {sku['price'] // 100}.{sku['price'] % 100:02d}"


def stock_text(stock: int) -> str:
    return "sold out" if stock == 0 else str(stock)


def sku_row(page: Page, sku: Sku) -> Any:
    return page.locator(f'#sku-rows tr[data-sku-id="{sku["sku_id"]}"]')


def expect_skus(page: Page, skus: list[Sku]) -> None:
    """The shown SKU rows are exactly these (id, size, color, price, stock), in this order."""
    cells = {
        "id": [str(s["sku_id"]) for s in skus],
        "size": [s["size"] for s in skus],
        "color": [s["color"] for s in skus],
        "price": [price_text(s) for s in skus],
        "stock": [stock_text(s["stock"]) for s in skus],
    }
    for name, texts in cells.items():
        expect(page.locator(f"#sku-rows td.{name}")).to_have_text(texts)


def in_stock(skus: list[Sku], count: int) -> list[Sku]:
    """The first `count` SKUs with some stock (to take one away)."""
    found = [s for s in skus if s["stock"] > 0][:count]
    assert len(found) == count
    return found


def test_page_product_opens_with_no_console_error(
    shared_visit: Visit, shared_server: LiveServer
) -> None:
    """A product opened from the catalog shows its name, SKUs and viewers with no console
    error, and its feed is the one filtered to it. (Shared server: reads brand 14.)"""
    page = shared_visit.page
    with api(shared_server) as http:
        product = first_page(http, 14)[0]
        show_brand(page, 14)
        open_product(page, product)
        expect_skus(page, sku_page(http, product["product_id"])["items"])
    expect(page.locator("#product-viewers")).to_have_text("1 viewing")
    expect(page.locator("#status-viewers")).to_have_text("viewers: connected")
    expect(row(page, product)).to_have_class("open")
    pid = product["product_id"]
    assert f"{shared_server.ws}/ws/catalog?product_id={pid}" in shared_visit.feeds
    assert f"{shared_server.ws}/ws/products/{pid}/viewers" in shared_visit.sockets
    assert shared_visit.errors == []


def test_page_product_shows_skus_and_follows_stock_and_price_changes(
    shared_visit: Visit, shared_server: LiveServer, shared_database_url: str
) -> None:
    """Opening a product shows its SKUs as GET answers them, a page at a time; a stock change
    over HTTP and price and stock changes in plain SQL show without a reload, priced in
    their currency's minor units; another product's changes never reach the view's feed.
    (Shared server: writes SKUs of brand 12's first two products.)"""
    page = shared_visit.page
    with api(shared_server) as http:
        product = first_page(http, 12)[0]
        pid = product["product_id"]
        first = sku_page(http, pid)
        assert len(first["items"]) == 20 and first["next_after"] is not None
        show_brand(page, 12)
        open_product(page, product)
        expect_skus(page, first["items"])
        expect(page.locator("#sku-previous")).to_be_disabled()

        bought, repriced, emptied = in_stock(first["items"], 3)
        elsewhere = sku_page(http, first_page(http, 12)[1]["product_id"])["items"][0]
        execute(
            shared_database_url,
            "UPDATE sku SET stock = stock + 1 WHERE sku_id = $1",
            elsewhere["sku_id"],
        )
        answer = http.post(f"/skus/{bought['sku_id']}/stock", json={"delta": -1})
        assert answer.status_code == 200, answer.text
        assert answer.json()["stock"] == bought["stock"] - 1
        expect(sku_row(page, bought).locator("td.stock")).to_have_text(
            stock_text(bought["stock"] - 1)
        )

        set_price = "UPDATE sku SET price = $2, currency = $3 WHERE sku_id = $1"
        execute(shared_database_url, set_price, repriced["sku_id"], 1299, "EUR")
        expect(sku_row(page, repriced).locator("td.price")).to_have_text("EUR 12.99")
        execute(
            shared_database_url, "UPDATE sku SET stock = 0 WHERE sku_id = $1", emptied["sku_id"]
        )
        expect(sku_row(page, emptied).locator("td.stock")).to_have_text("sold out")
        for minor, currency, shown in [(1500, "JPY", "JPY 1500"), (12345, "KWD", "KWD 12.345")]:
            execute(shared_database_url, set_price, repriced["sku_id"], minor, currency)
            expect(sku_row(page, repriced).locator("td.price")).to_have_text(shown)
        execute(shared_database_url, set_price, repriced["sku_id"], 1299, "EUR")
        expect(sku_row(page, repriced).locator("td.price")).to_have_text("EUR 12.99")

        page.click("#sku-next")
        expect_skus(page, sku_page(http, pid, first["next_after"])["items"])
        page.click("#sku-previous")
        now = sku_page(http, pid)["items"]
        expect_skus(page, now)
    assert {s["sku_id"]: s for s in now}[repriced["sku_id"]]["price"] == 1299
    # The view's feed is filtered to its product: the other product's change, made first, is
    # not among the frames it received before the ones awaited above.
    frames = shared_visit.frames[f"{shared_server.ws}/ws/catalog?product_id={pid}"]
    assert {json.loads(f)["data"]["product_id"] for f in frames} == {pid}
    assert page.evaluate("() => window.notReloaded") is True
    assert shared_visit.errors == []


def test_page_product_viewers_count_the_pages_that_show_it(
    shared_server: LiveServer, new_page: Callable[[], Page]
) -> None:
    """Two pages on one product both show "2 viewing"; one closes the view and the other
    shows "1 viewing"; opening another product leaves the first one's count too.
    (Shared server: reads brand 13; its first two products' viewers are this test's.)"""
    a, b = open_visit(new_page, shared_server), open_visit(new_page, shared_server)
    with api(shared_server) as http:
        one, other = first_page(http, 13)[:2]
    for visit in (a, b):
        show_brand(visit.page, 13)
        open_product(visit.page, one)
    for visit in (a, b):
        expect(visit.page.locator("#product-viewers")).to_have_text("2 viewing")

    b.page.click("#product-close")
    expect(b.page.locator("#product-view")).to_be_hidden()
    expect(b.page.locator("#status-viewers")).to_have_text("viewers: none open")
    expect(b.page.locator("#status-product")).to_have_text("product: none open")
    expect(a.page.locator("#product-viewers")).to_have_text("1 viewing")

    open_product(b.page, one)
    expect(a.page.locator("#product-viewers")).to_have_text("2 viewing")
    open_product(b.page, other)
    expect(a.page.locator("#product-viewers")).to_have_text("1 viewing")
    expect(b.page.locator("#product-viewers")).to_have_text("1 viewing")
    expect(row(b.page, one)).not_to_have_class("open")
    socket = b.page.evaluate("() => window.productFeed.socket.url")
    assert socket == f"{shared_server.ws}/ws/catalog?product_id={other['product_id']}"
    assert a.errors == [] and b.errors == []


def test_page_product_follows_skus_created_and_deleted_and_its_own_deletion(
    shared_visit: Visit, shared_server: LiveServer
) -> None:
    """A product of the test's own, opened with no SKUs: SKUs created over HTTP appear, a
    stock change to 0 shows "sold out", a rename renames the heading, a deleted SKU goes, and
    deleting the product says so. (Shared server: writes a product of its own in brand 15.)"""
    page = shared_visit.page
    with api(shared_server) as http:
        made = create(http, "Desk lamp", 15)
        pid = made["product_id"]
        show_brand(page, 15)
        open_product(page, made)
        expect(page.locator("#skus-empty")).to_be_visible()
        expect(page.locator("#product-viewers")).to_have_text("1 viewing")

        body = {"size": "Small", "color": "Blue", "price": 2500, "currency": "EUR", "stock": 3}
        created = [http.post(f"/products/{pid}/skus", json=body) for _ in range(2)]
        assert [c.status_code for c in created] == [201, 201], [c.text for c in created]
        skus = [c.json() for c in created]
        expect_skus(page, skus)
        expect(page.locator("#skus-empty")).to_be_hidden()

        sold = http.post(f"/skus/{skus[0]['sku_id']}/stock", json={"delta": -3})
        assert sold.status_code == 200, sold.text
        expect(sku_row(page, skus[0]).locator("td.stock")).to_have_text("sold out")

        renamed_to = {"product_name": "Desk lamp, renamed", "brand_id": 15}
        assert http.put(f"/products/{pid}", json=renamed_to).status_code == 200
        expect(page.locator("#product-name")).to_have_text("Desk lamp, renamed")
        expect(row(page, made)).to_contain_text("Desk lamp, renamed")

        assert http.delete(f"/skus/{skus[1]['sku_id']}").status_code == 204
        expect_skus(page, [{**skus[0], "stock": 0}])

        assert http.delete(f"/products/{pid}").status_code == 204
    expect(page.locator("#product-deleted")).to_have_text("This product was deleted.")
    expect(page.locator("#sku-rows tr")).to_have_count(0)
    expect(page.locator("#product-name")).to_have_text("Desk lamp, renamed")
    expect(row(page, made)).to_have_count(0)
    assert page.evaluate("() => window.notReloaded") is True
    assert shared_visit.errors == []


def test_page_product_applies_changes_that_come_while_it_loads(
    shared_visit: Visit, shared_server: LiveServer
) -> None:
    """A stock change made after the view's SKUs were read, whose frame arrives before they
    do, still shows: the product feed holds frames for the snapshot as the catalog's does.
    (Shared server: writes a SKU of brand 16's first product.)"""
    page = shared_visit.page
    with api(shared_server) as http:
        product = first_page(http, 16)[0]
        pid = product["product_id"]
        (target,) = in_stock(sku_page(http, pid)["items"], 1)
        changed: list[Sku] = []

        def hold_the_snapshot(route: Route) -> None:
            snapshot = route.fetch()  # read now: the change below is not in it
            answer = http.post(f"/skus/{target['sku_id']}/stock", json={"delta": -1})
            changed.append(answer.json())
            page.wait_for_function("() => window.productFeed.held > 0")  # its frame is in
            route.fulfill(response=snapshot)

        page.route(f"**/products/{pid}/skus?*", hold_the_snapshot)
        show_brand(page, 16)
        open_product(page, product)
        expect(sku_row(page, target).locator("td.stock")).to_have_text(
            stock_text(target["stock"] - 1)
        )
    assert [c["stock"] for c in changed] == [target["stock"] - 1]
    assert shared_visit.errors == []
