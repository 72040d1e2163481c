"""GET /metrics (API.md "Metrics and logs"): the named metrics, with bounded labels."""

import asyncio
import re

import httpx
import websockets
from lihil.vendors import TestClient

from tests.helpers import LiveServer


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with exactly these labels (in any order), or None."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if found == labels:
                return float(match.group(3))
    return None


def test_http_requests_are_counted_by_route_template_never_raw_path(client: TestClient) -> None:
    for pid in (1, 2, 3, 999999):
        client.get(f"/products/{pid}")
    client.get("/no/such/path/12345")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    ok = sample(
        text,
        "catalog_http_requests_total",
        method="GET",
        route="/products/{product_id}",
        status="200",
    )
    missing = sample(
        text,
        "catalog_http_requests_total",
        method="GET",
        route="/products/{product_id}",
        status="404",
    )
    assert (ok, missing) == (3.0, 1.0)
    assert (
        sample(text, "catalog_http_requests_total", method="GET", route="unmatched", status="404")
        == 1.0
    )
    assert '/products/1"' not in text and "12345" not in text  # no raw paths as labels
    count = sample(
        text,
        "catalog_http_request_duration_seconds_count",
        method="GET",
        route="/products/{product_id}",
    )
    assert count == 4.0


def test_pool_broker_and_feed_are_reported(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert sample(text, "catalog_db_pool_connections", state="max") == 4.0  # DB_POOL_MAX
    assert sample(text, "catalog_db_pool_connections", state="waiting") == 0.0
    assert sample(text, "catalog_broker_up") == 1.0
    lag = sample(text, "catalog_feed_lag_seconds")
    assert lag is not None and 0 <= lag < 60


def test_process_memory_descriptors_cpu_and_gc_are_reported(client: TestClient) -> None:
    """The official client's standard collectors: an operator sees a leak or a flood."""
    text = client.get("/metrics").text
    rss = sample(text, "process_resident_memory_bytes")
    fds = sample(text, "process_open_fds")
    assert rss is not None and rss > 10_000_000
    assert fds is not None and fds >= 3
    assert sample(text, "process_cpu_seconds_total") is not None
    assert sample(text, "python_gc_collections_total", generation="0") is not None


async def test_websocket_connections_frames_and_closes_by_endpoint(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.http) as http:
        async with websockets.connect(f"{live_server.ws}/web_socket/metrics-room") as room:
            await asyncio.wait_for(room.recv(), 10)  # welcome
            text = (await http.get("/metrics")).text
            assert (
                sample(text, "catalog_ws_connections", endpoint="/web_socket/{session_id}") == 1.0
            )
            assert "metrics-room" not in text  # the template, not the room's path
        async with websockets.connect(f"{live_server.ws}/ws/echo") as echo:
            for _ in range(3):
                await echo.send("x")
                await asyncio.wait_for(echo.recv(), 10)
        async with websockets.connect(f"{live_server.ws}/ws/echo") as echo:
            await echo.send(b"binary")  # closed 1003 by the server
            try:
                await asyncio.wait_for(echo.recv(), 10)
            except websockets.ConnectionClosed:
                pass
        async with asyncio.timeout(10):  # the handlers finish just after the clients see it
            while True:
                text = (await http.get("/metrics")).text
                if sample(text, "catalog_ws_closes_total", endpoint="/ws/echo", code="1003"):
                    break
        assert sample(text, "catalog_ws_frames_sent_total", endpoint="/ws/echo") == 3.0
        assert sample(text, "catalog_ws_closes_total", endpoint="/ws/echo", code="1000") == 1.0
        assert sample(text, "catalog_ws_connections", endpoint="/ws/echo") in (None, 0.0)
