"""A database that goes away gives 503 problems, and the service recovers by itself."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from lihil.vendors import TestClient

from src.app import create_app
from src.db.embedded import EmbeddedPostgres
from src.db.pool import DatabaseStartupError
from tests.helpers import AUTH, make_settings


@pytest.fixture
def own_server(pg_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A private PostgreSQL this test may stop and start without disturbing the others."""
    server = EmbeddedPostgres(pg_dir / "data", fast=True)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


def test_database_down_gives_503_then_recovers(own_server: EmbeddedPostgres) -> None:
    """Stop PostgreSQL: data endpoints and /ready answer 503; start it: 200 again."""
    settings = make_settings(DATABASE_URL=own_server.dsn(), DB_CONNECT_TIMEOUT=2)
    with TestClient(create_app(settings), headers=AUTH) as client:
        assert client.get("/brands/1").status_code == 200

        own_server.stop()
        for method, path, body in [
            ("GET", "/brands", None),
            ("GET", "/products/1", None),
            ("GET", "/products", None),
            ("POST", "/products", {"product_name": "x", "brand_id": 1}),
            ("DELETE", "/products/3", None),
            ("GET", "/ready", None),
        ]:
            response = client.request(method, path, json=body)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "database-unavailable"
            assert response.headers["retry-after"] == "1"
            # A plain sentence for the client; where the database lives is for the log only.
            assert str(own_server.port) not in response.text and "Error" not in response.text
        assert client.get("/health").status_code == 200  # the process itself is fine

        own_server.start()  # same data folder, same port
        assert client.get("/ready").status_code == 200
        assert client.get("/brands/1").status_code == 200
        assert client.get("/products/3").status_code == 200  # the DELETE never happened


def test_unreachable_database_fails_start_up_with_a_readable_message(
    own_server: EmbeddedPostgres,
) -> None:
    """A wrong DSN stops start-up, naming the database (without its password)."""
    port = own_server.port
    own_server.stop()
    settings = make_settings(
        DATABASE_URL=f"postgresql://postgres:secret@127.0.0.1:{port}/postgres",
        DB_CONNECT_TIMEOUT=2,
    )
    with pytest.raises(
        DatabaseStartupError, match=r"cannot use the database at .*postgres:\*\*\*@"
    ):
        with TestClient(create_app(settings)):
            pass
