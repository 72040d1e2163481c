"""The live page in real headless Chromium (Debian's /usr/bin/chromium) against real uvicorn.

Set PAGE_SCREENSHOT=/tmp/page.png to keep a screenshot of the two-browser test.
"""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.helpers import LiveServer, start_live_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000
VIEWPORT: ViewportSize = {"width": 1100, "height": 900}
GOING_AWAY = r"1001 server shutting down"

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; the browser tests are skipped without it (never downloaded)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium: apt-get install chromium")
    return CHROMIUM


@pytest.fixture
def pages(chromium: Path, live_server: LiveServer) -> Iterator[tuple[Page, Page]]:
    """Two pages in separate browser contexts (like two people), both on the live page.

    Chromium starts after the server and stops before it: sync Playwright keeps an event loop
    marked as running in this thread, and the database fixtures need asyncio.run().
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(2)]
            a, b = (context.new_page() for context in contexts)
            for page in (a, b):
                page.set_default_timeout(WAIT_MS)
                page.goto(f"{live_server.http}/")
            yield a, b
        finally:
            browser.close()


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


def test_page_full_room_shows_the_close_reason(pages: tuple[Page, Page]) -> None:
    """A second member of a one-user room sees 4429 'session full (1/1)' and can join again."""
    a, b = pages
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
