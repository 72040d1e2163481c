"""Request ids on responses and in log lines; JSON log lines; security headers."""

import json
import logging

import pytest
from lihil.vendors import TestClient

from src.logs import JsonFormatter, RequestIdFilter, request_id
from tests.helpers import LiveServer, start_live_server


def test_every_response_carries_a_request_id_and_security_headers(client: TestClient) -> None:
    for path in ("/brands", "/products/999999", "/nowhere"):
        response = client.get(path)
        assert len(response.headers["x-request-id"]) == 32
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    first, second = client.get("/health"), client.get("/health")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("abc-123_X.y", True), ("", False), ("x" * 129, False), ("a b", False), ("é", False)],
)
def test_the_clients_own_id_is_kept_when_sane(client: TestClient, sent: str, kept: bool) -> None:
    response = client.get("/health", headers={"X-Request-ID": sent.encode()})
    assert (response.headers["x-request-id"] == sent) is kept


def test_json_lines_carry_the_request_id() -> None:
    record = logging.LogRecord(
        "catalog.db", logging.WARNING, __file__, 1, "pool %s", ("down",), None
    )
    token = request_id.set("r-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning" and line["logger"] == "catalog.db"
    assert line["message"] == "pool down" and line["request_id"] == "r-1"
    assert line["time"].endswith("Z")


def test_a_live_server_logs_its_lines_as_json_with_request_ids(database_url: str) -> None:
    """LOG_FORMAT=json: uvicorn's access line about a request is JSON and has its id."""
    process, port = start_live_server(database_url, LOG_FORMAT="json")
    server = LiveServer(process, port)
    try:
        import httpx

        response = httpx.get(f"{server.http}/brands/1", headers={"X-Request-ID": "trace-42"})
        assert response.headers["x-request-id"] == "trace-42"
        line = process.wait_for('"request_id": "trace-42"')
        entry = json.loads(line)
        assert entry["logger"] == "uvicorn.access" and "GET /brands/1" in entry["message"]
        # Again: a hit of the response cache, answered without an ASGI request, logged alike.
        response = httpx.get(f"{server.http}/brands/1", headers={"X-Request-ID": "trace-43"})
        assert response.headers["x-request-id"] == "trace-43"
        entry = json.loads(process.wait_for('"request_id": "trace-43"'))
        assert entry["logger"] == "uvicorn.access" and "GET /brands/1" in entry["message"]
        metrics = httpx.get(f"{server.http}/metrics").text
        assert 'catalog_cache_requests_total{result="hit"} 1.0' in metrics  # it was a hit
    finally:
        process.stop()
