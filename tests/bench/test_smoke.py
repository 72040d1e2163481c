"""`python -m bench --smoke`, run once for the module (one PostgreSQL for every section):
every server starts, answers like ours and is loaded; the response cache is filled and a
write is read back on another worker; the catalog is generated at a tiny size and loaded;
the report has a row for each target and the machine line."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.catalog import FILTER_NAMES, FILTERS
from src.config import PROJECT_ROOT

WRK = Path("/usr/bin/wrk")
TARGETS = [
    f"HTTP {endpoint}: {what}"
    for endpoint in ("/brands", "/products/{id}")
    for what in ("req/s ours / bare ASGI floor", "req/s ours / Starlette", "p99 ours / Starlette")
] + [
    "HTTP /health: req/s ours / bare ASGI floor's /ping",
    # issue 16: reads at memory speed
    "HTTP /products/{id}, cached: req/s ours / bare ASGI floor",
    "HTTP /brands, cached: req/s ours / bare ASGI floor",
    "HTTP /products/{id}, a cache hit: req/s ours / bare ASGI floor's /ping",
    "HTTP /products/{id}, cached, 100 products changed a second: "
    "req/s ours / bare ASGI floor (the same writes)",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report of one `python -m bench --smoke` (`--only ws` where wrk is missing)."""
    out = tmp_path_factory.mktemp("bench") / "BENCHMARKS.md"
    only = [] if WRK.exists() else ["--only", "ws"]
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", *only, "--out", str(out)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out.read_text()


# The HTTP, cache and catalog sections load servers with wrk (.ci/run installs it).
needs_wrk = pytest.mark.skipif(
    not WRK.exists(), reason="wrk is not installed (/usr/bin/wrk: apt-get install wrk)"
)


@needs_wrk
@pytest.mark.timeout(630)
def test_http_smoke_writes_a_report(report: str) -> None:
    for target in TARGETS:
        assert f"| {target} | " in report, target
    assert "\nMachine: " in report
    assert "| target | measured | limit | verdict |" in report
    assert "wrk command: `wrk -t1 -c10 -d1s --latency" in report


@needs_wrk
@pytest.mark.timeout(630)
def test_http_smoke_loads_ours_with_and_without_its_cache(report: str) -> None:
    """Ours with CACHE=off has its rows; the writer ran and ours' hit rate was read from
    its /metrics."""
    section = report.split("\n## HTTP\n", 1)[1].split("\n## ", 1)[0]
    writes = section.split("\n### GET /products/{id} while 100 products change a second\n")[1]
    rows = [line for line in writes.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[2:]] == [
        "| ours (lihil)",
        "| ours, CACHE=off",
        "| bare ASGI floor",
    ]
    assert "| ours, CACHE=off | " in section.split("### GET /brands\n")[1]
    assert re.search(r"achieved \d+ changes/s during ours' rounds", writes)
    assert re.search(r"hits \d+\.\d+ % of cacheable reads", writes)


@needs_wrk
@pytest.mark.timeout(630)
def test_cache_smoke_writes_a_report(report: str) -> None:
    """The memory of the entries filled, and the write read back on another worker: every
    answer sent with the write's Catalog-Position reflected it."""
    section = report.split("\n## Response cache\n", 1)[1].split("\n## ", 1)[0]
    assert "### Memory of 200 entries" in section
    assert re.search(r"\| ours \(lihil\) \|( [\d.]+ \|){4} 200 \|", section)
    assert re.search(r"Kept by the cache: -?[\d.]+ MiB for 180 entries", section)
    assert "| GET on B sending the PUT's `Catalog-Position` | 20 | " in section
    assert "| 20 of 20 |" in section


WS_TARGETS = [
    "connect time ours /counter ÷ ours /ws/echo",
    "frames received ÷ N",
    "frames per CPU-s ours ÷ bare loop",
    "RSS per connection ours ÷ bare uvicorn",
]


@pytest.mark.timeout(630)
def test_websocket_smoke_writes_a_report(report: str) -> None:
    """Every server and the load client run, a storm of 50 converges on ours, and the report
    has the WebSocket targets."""
    for target in WS_TARGETS:
        assert target in report, target
    assert "| ours /counter |" in report and "did not converge" not in report


CATALOG_ROWS = [
    "GET /products?limit=20",
    "GET /products?q=&limit=20",
    "GET /products?min_price=&max_price=&limit=20",
    "GET /products?in_stock=true&brand_id=&limit=20",
    "GET /products/{id}",
    "GET /products/{id}/skus",
    "POST /skus/{id}/stock, one SKU",
    "POST /skus/{id}/stock, 1,000 SKUs",
    "PUT /products/{id}, 2,000 products",
]


@needs_wrk
@pytest.mark.timeout(630)
def test_catalog_smoke_writes_a_report(report: str) -> None:
    """The catalog is generated (its own database, tiny) and every row is loaded or says
    why not; each filter served has its targets; the plans the server ran are read back."""
    section = report.split("\n## Catalog\n", 1)[1].split("\n## ", 1)[0]
    assert "20 brands, 2,000 products, 10,000 SKUs (5 a product)" in section
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in section.splitlines()}
    for title in CATALOG_ROWS:
        assert title in rows, title
    served = {title: "endpoint not served" not in rows[title] for title in CATALOG_ROWS}
    assert served["GET /products?limit=20"] and served["GET /products/{id}"]
    for key, title in zip(FILTERS, CATALOG_ROWS[1:4], strict=True):
        name = f"Catalog /products{FILTER_NAMES[key]}"
        assert (f"| {name}: p99 one client, ms | " in report) == served[title], title
        assert (f"| {name}: req/s / GET /products?limit=20 | " in report) == served[title]
    # The plans auto_explain logged for the reference: its table row and its plan's lines.
    assert "| GET /products?limit=20 | 8 | " in section
    assert "```text\nSQL: SELECT " in section and " on product (rows=" in section
