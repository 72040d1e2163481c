"""`make run`: embedded PostgreSQL, demo data, serving; Ctrl-C stops both; data is kept."""

import signal
import socket
from pathlib import Path

import httpx

from src.db.embedded import EmbeddedPostgres, free_port
from tests.helpers import running


def stalled_head_answer(port: int) -> bytes:
    """Send half a request head and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        return received


def test_run_serves_the_catalog_then_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    """Two runs on one data folder: the second finds what the first wrote."""
    pgdata = tmp_path / "pg"
    port = free_port()
    env = {
        "PGDATA_DIR": str(pgdata),
        "PORT": str(port),
        "DATABASE_URL": "",
        "HEADER_TIMEOUT_S": "1",
    }
    base = f"http://127.0.0.1:{port}"

    with running(["-m", "scripts.run"], env) as server:
        server.wait_for("Application startup complete")
        assert len(httpx.get(f"{base}/brands").json()) == 100
        created = httpx.post(f"{base}/product", json={"product_name": "kept", "brand_id": 1})
        assert created.status_code == 201
        assert stalled_head_answer(port).startswith(b"HTTP/1.1 408 ")  # src.server in use
        assert server.stop(signal.SIGINT) == 0
        server.wait_for("stopping the embedded PostgreSQL")
    assert EmbeddedPostgres(pgdata).pid is None  # no postmaster.pid: the server stopped

    with running(["-m", "scripts.run"], env) as server:
        server.wait_for("Application startup complete")
        location = created.headers["location"]
        assert httpx.get(f"{base}{location}").json()["product_name"] == "kept"
        assert server.stop(signal.SIGTERM) == 0
    server.wait_for("stopping the embedded PostgreSQL")
    assert EmbeddedPostgres(pgdata).pid is None


def test_run_refuses_a_malformed_setting(tmp_path: Path) -> None:
    """A bad value stops `make run` at once with the variable's name."""
    with running(["-m", "scripts.run"], {"PORT": "eighty"}) as server:
        server.wait_for("invalid setting PORT")
        assert server.proc.wait(timeout=30) == 2
