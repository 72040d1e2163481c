"""`make run`: embedded PostgreSQL, demo data, serving; Ctrl-C stops both; data is kept."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import websockets

from src.db.embedded import EmbeddedPostgres, _alive, free_port
from tests.helpers import running
from tests.realtime.test_live import wait_for_count


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
        "JWT_SECRET": "",
        "HEADER_TIMEOUT_S": "1",
    }
    base = f"http://127.0.0.1:{port}"

    with running(["-m", "scripts.run"], env) as server:
        auth = {"Authorization": server.wait_for("Authorization: Bearer ").split(": ", 1)[1]}
        server.wait_for("Application startup complete")
        assert len(httpx.get(f"{base}/brands").json()) == 100
        new = {"product_name": "kept", "brand_id": 1}
        assert httpx.post(f"{base}/product", json=new).status_code == 401
        created = httpx.post(f"{base}/product", json=new, headers=auth)
        assert created.status_code == 201
        assert stalled_head_answer(port).startswith(b"HTTP/1.1 408 ")  # src.server in use
        assert server.stop(signal.SIGINT) == 0
        server.wait_for("stopping the embedded PostgreSQL")
    assert EmbeddedPostgres(pgdata).pid is None  # no postmaster.pid: the server stopped

    with running(["-m", "scripts.run"], env) as server:
        server.wait_for("Application startup complete")
        # The same development secret: a token from the first run still works, and so
        # does one minted by scripts.token.
        minted = subprocess.run(
            [sys.executable, "-m", "scripts.token", "--ttl", "60"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for headers in (auth, {"Authorization": f"Bearer {minted}"}):
            renamed = httpx.put(f"{base}{created.headers['location']}", json=new, headers=headers)
            assert renamed.status_code == 200, renamed.text
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


def test_run_with_two_workers_starts_a_local_redis_and_stops_it(database_url: str) -> None:
    """WORKERS=2 without REDIS_URL: a local Redis for the workers, which count as one; it
    is gone once the run stops."""
    port = free_port()
    env = {"WORKERS": "2", "PORT": str(port), "DATABASE_URL": database_url}
    env |= {"REDIS_URL": "", "BROKER": ""}  # whatever the developer's environment says
    with running(["-m", "scripts.run"], env) as server:
        line = server.wait_for("Redis: redis://127.0.0.1:")
        redis_pid = int(line.rsplit("(pid ", 1)[1].rstrip(")"))
        for _ in range(2):
            server.wait_for("Application startup complete")
        assert len(httpx.get(f"http://127.0.0.1:{port}/brands").json()) == 100
        assert httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200
        asyncio.run(count_six_clients(f"ws://127.0.0.1:{port}/counter"))
        assert server.stop(signal.SIGTERM) == 0
        server.wait_for("stopping the local Redis")
    assert not _alive(redis_pid)


async def count_six_clients(url: str) -> None:
    """Six clients, spread over the workers by the kernel, all end on the exact count."""
    clients = await asyncio.gather(*(websockets.connect(url) for _ in range(6)))
    try:
        await asyncio.gather(*(wait_for_count(ws, "6") for ws in clients))
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


def test_run_refuses_several_workers_on_the_memory_broker() -> None:
    """BROKER=memory said explicitly with WORKERS=2 is refused, naming both settings."""
    env = {"WORKERS": "2", "BROKER": "memory", "REDIS_URL": ""}
    with running(["-m", "scripts.run"], env) as server:
        server.wait_for("WORKERS=2 with BROKER=memory")
        assert server.proc.wait(timeout=30) == 2
