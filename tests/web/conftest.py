"""One headless Chromium (Debian's /usr/bin/chromium, never downloaded) for every browser test
in tests/web, and a browser context of its own for each page a test opens.

While the browser lives, sync Playwright marks its event loop as running on the main
thread: tests here are sync (an async test would find that loop running), and whatever
they run on asyncio runs on a thread of its own (conftest's `run`, test_page's `run_sql`).
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

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


@pytest.fixture(scope="package")
def chromium() -> Path:
    """Debian's Chromium; the browser tests are skipped without it (never downloaded)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="package")
def browser(chromium: Path) -> Iterator[Browser]:
    """Headless Chromium, launched once for the package's tests (a launch costs about half
    a second), closed after the last."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    """Makes browser contexts (each like another person, sharing nothing), all closed after
    the test: before the server it used stops, when the test asked for the server first."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def new_page(new_context: Callable[[], BrowserContext]) -> Callable[[], Page]:
    """Opens a page in a browser context of its own."""
    return lambda: new_context().new_page()
