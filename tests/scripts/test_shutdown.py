"""SIGTERM under load, as `make run` serves: every WebSocket client gets 1001, a request in
flight completes, the process exits within its grace period, and the embedded PostgreSQL
is stopped."""

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

import httpx
import websockets

from src.db.embedded import EmbeddedPostgres, free_port
from tests.helpers import AUTH, TEST_JWT_SECRET, running
from tests.realtime.test_live import close_of, recv

GRACE_S = 5  # scripts/run.py: timeout_graceful_shutdown


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Read one HTTP response with a Content-Length; its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(v)
        for k, _, v in (h.partition(": ") for h in lines[1:])
        if k.lower() == "content-length"
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(lines[0].split()[1]), body


async def test_sigterm_under_load_stops_cleanly(pg_dir: Path) -> None:
    data, port = pg_dir / "data", free_port()
    pgdata = data / "pg"
    env = {
        "DATA_DIR": str(data),
        "PORT": str(port),
        "DATABASE_URL": "",
        "JWT_SECRET": TEST_JWT_SECRET,
        "HEADER_TIMEOUT_S": "30",
    }
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    with running(["-m", "scripts.run"], env) as server:
        server.wait_for("Uvicorn running on", timeout=120)
        clients = [await websockets.connect(f"{ws_base}/counter") for _ in range(10)]
        for ws in clients:
            await recv(ws)
        # A write in flight: its head and half its body are in; the rest comes after the
        # signal. (Another request answered first: the server has read what came before.)
        body = json.dumps({"product_name": "in flight", "brand_id": 1}).encode()
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        head = (
            f"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: {AUTH['Authorization']}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[:10])
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/health")).status_code == 200
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for("Shutting down")
        codes = await asyncio.gather(*(close_of(ws) for ws in clients))
        assert all(code == (1001, "server shutting down") for code in codes), codes
        sock.sendall(body[10:])
        status, answer = await asyncio.to_thread(read_response, sock)
        sock.close()
        assert status == 201, answer
        assert server.proc.wait(timeout=GRACE_S + 30) == 0
        assert time.monotonic() - started < GRACE_S + 15  # the grace, then PostgreSQL's stop
        lines = server.rest()
    assert EmbeddedPostgres(pgdata).pid is None  # PostgreSQL stopped
    log = "\n".join(lines)
    assert "stopping the embedded PostgreSQL" in log
    assert "Traceback" not in log, log[-3000:]
