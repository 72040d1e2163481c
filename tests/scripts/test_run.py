"""`make run`: embedded PostgreSQL, demo data, serving; Ctrl-C stops both; data is kept;
one run per data folder; Ctrl-C twice hurries the stop without breaking it."""

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from src.db.embedded import EmbeddedPostgres, _alive, free_port
from tests.helpers import Process, running
from tests.realtime.test_live import wait_for_count


def stalled_head_answer(port: int) -> bytes:
    """Send half a request head and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        return received


@contextmanager
def run_script(env: dict[str, str], *before: str) -> Iterator[Process]:
    """`python [*before] -m scripts.run`; one a failed test leaves running gets Ctrl-C
    (SIGINT by its pid), so its workers, Redis and PostgreSQL stop with it."""
    with running([*before, "-m", "scripts.run"], env) as process:
        try:
            yield process
        finally:
            if process.proc.poll() is None:
                process.stop(signal.SIGINT)


def run_env(data: Path, port: int) -> dict[str, str]:
    return {"DATA_DIR": str(data), "PORT": str(port), "DATABASE_URL": "", "JWT_SECRET": ""}


def test_run_serves_the_catalog_then_stops_cleanly_and_keeps_data(pg_dir: Path) -> None:
    """Two runs on one data folder: the second finds what the first wrote."""
    data = pg_dir / "data"
    pgdata = data / "pg"
    port = free_port()
    env = {
        "DATA_DIR": str(data),
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


def test_run_refuses_a_malformed_setting() -> None:
    """A bad value stops `make run` at once with the variable's name."""
    with running(["-m", "scripts.run"], {"PORT": "eighty"}) as server:
        server.wait_for("invalid setting PORT")
        assert server.proc.wait(timeout=30) == 2


def test_run_with_two_workers_starts_a_local_redis_and_stops_it(
    database_url: str, pg_dir: Path
) -> None:
    """WORKERS=2 without REDIS_URL: a local Redis for the workers, which count as one; it
    is gone once the run stops."""
    port = free_port()
    env = {"WORKERS": "2", "PORT": str(port), "DATABASE_URL": database_url}
    env["DATA_DIR"] = str(pg_dir / "data")  # the data folder (secret, Redis): not the checkout
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
        lines = server.rest()
    assert not [x for x in lines if "WARNING" in x], "\n".join(lines)  # Redis stopped last
    assert not _alive(redis_pid)


async def count_six_clients(url: str) -> None:
    """Six clients, spread over the workers by the kernel, all end on the exact count."""
    clients = await asyncio.gather(*(websockets.connect(url) for _ in range(6)))
    try:
        await asyncio.gather(*(wait_for_count(ws, "6") for ws in clients))
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


def test_runs_on_sibling_data_folders_share_nothing_and_both_serve(pg_dir: Path) -> None:
    """DATA_DIR holds all a run keeps (the database and its lock, the local Redis, the
    development secret): two runs with WORKERS=2 on sibling folders both serve, each with
    its own secret, and nothing is written beside their folders."""
    folders = [pg_dir / "d1", pg_dir / "d2"]
    with ExitStack() as stack:
        runs = []
        for folder in folders:
            port = free_port()
            env = run_env(folder, port) | {"WORKERS": "2", "REDIS_URL": "", "BROKER": ""}
            env["SEED_DEMO_DATA"] = "false"
            runs.append((port, stack.enter_context(run_script(env))))
        tokens = []
        for _, server in runs:
            tokens.append(server.wait_for("Authorization: Bearer ").split(": ", 1)[1])
            for _ in range(2):
                server.wait_for("Application startup complete")
        for (port, _), own, other in zip(runs, tokens, reversed(tokens), strict=True):
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/ready").status_code == 200
            new = {"product_name": "x", "brand_id": 1}  # no demo catalog: no brand 1
            written = httpx.post(f"{base}/product", json=new, headers={"Authorization": own})
            assert written.status_code == 409, written.text  # the token was accepted
            foreign = httpx.post(f"{base}/product", json=new, headers={"Authorization": other})
            assert foreign.status_code == 401, foreign.text
        for _, server in runs:
            assert server.stop(signal.SIGINT) == 0
    assert sorted(os.listdir(pg_dir)) == ["d1", "d2"]
    for folder in folders:
        assert {"pg", "pg.lock", "redis", "jwt-secret"} <= set(os.listdir(folder))
        assert EmbeddedPostgres(folder / "pg").pid is None


# `python IN_OWN_SESSION -m scripts.run`: the run leads a new session and process group
# (same pid), as `make run` in a terminal does; Ctrl-C there signals the whole group.
IN_OWN_SESSION = (
    "import os, sys; os.setsid(); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def test_ctrl_c_of_a_run_with_two_workers_stops_quietly(pg_dir: Path) -> None:
    """SIGINT to the run's whole process group (a terminal's Ctrl-C) with WORKERS=2: the
    workers stop before the local Redis, so no broker warning is logged; status 0, and
    PostgreSQL and Redis are gone."""
    data = pg_dir / "data"
    env = run_env(data, free_port()) | {"WORKERS": "2", "REDIS_URL": "", "BROKER": ""}
    with run_script(env, "-c", IN_OWN_SESSION) as server:
        line = server.wait_for("Redis: redis://127.0.0.1:")
        redis_pid = int(line.rsplit("(pid ", 1)[1].rstrip(")"))
        for _ in range(2):
            server.wait_for("Application startup complete")
        postgres_pid = EmbeddedPostgres(data / "pg").pid
        assert postgres_pid is not None and running_process(postgres_pid)
        assert os.getpgid(server.proc.pid) == server.proc.pid
        os.killpg(server.proc.pid, signal.SIGINT)
        assert server.proc.wait(timeout=60) == 0
        lines = server.rest()
    output = "\n".join(lines)
    assert not [x for x in lines if "WARNING" in x or "unreachable" in x], output
    assert "Traceback" not in output and "ERROR" not in output, output
    assert not running_process(redis_pid) and not running_process(postgres_pid)


def test_run_refuses_several_workers_on_the_memory_broker() -> None:
    """BROKER=memory said explicitly with WORKERS=2 is refused, naming both settings."""
    env = {"WORKERS": "2", "BROKER": "memory", "REDIS_URL": ""}
    with running(["-m", "scripts.run"], env) as server:
        server.wait_for("WORKERS=2 with BROKER=memory")
        assert server.proc.wait(timeout=30) == 2


def test_second_run_on_the_same_data_folder_is_refused_and_the_first_keeps_serving(
    pg_dir: Path,
) -> None:
    """A second run on a data folder in use stops at once, naming the folder and what to
    do; the first run's PostgreSQL is untouched and it keeps answering."""
    data = pg_dir / "data"
    pgdata = data / "pg"
    first_port, second_port = free_port(), free_port()
    with running(["-m", "scripts.run"], run_env(data, first_port)) as first:
        first.wait_for("Uvicorn running on")
        with running(["-m", "scripts.run"], run_env(data, second_port)) as second:
            line = second.wait_for("is in use by another run", timeout=30)
            assert str(pgdata) in line and f"pid {first.proc.pid}" in line
            assert "DATA_DIR=/another/folder make run" in line
            assert second.proc.wait(timeout=30) == 2
            assert not any("stopping the embedded PostgreSQL" in x for x in second.rest())
        assert httpx.get(f"http://127.0.0.1:{first_port}/ready").status_code == 200
        assert len(httpx.get(f"http://127.0.0.1:{first_port}/brands").json()) == 100
        assert first.stop(signal.SIGINT) == 0
    assert EmbeddedPostgres(pgdata).pid is None


def test_run_after_a_killed_run_adopts_its_postgresql_and_stops_it(pg_dir: Path) -> None:
    """kill -9 of `make run` leaves its PostgreSQL running: the next run on the folder is
    not refused; it adopts that server, serves, and stops it on Ctrl-C."""
    data = pg_dir / "data"
    pgdata = data / "pg"
    port = free_port()
    with running(["-m", "scripts.run"], run_env(data, port)) as killed:
        killed.wait_for("Uvicorn running on")
        assert killed.stop(signal.SIGKILL) == -signal.SIGKILL
    orphan = EmbeddedPostgres(pgdata).pid
    assert orphan is not None and _alive(orphan)

    with running(["-m", "scripts.run"], run_env(data, port)) as server:
        assert f"(pid {orphan}) left running" in server.wait_for("adopted the PostgreSQL")
        server.wait_for("Uvicorn running on")
        assert httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200
        assert server.stop(signal.SIGINT) == 0
    assert EmbeddedPostgres(pgdata).pid is None


def test_second_run_with_workers_is_refused_the_local_redis_and_a_killed_runs_is_stopped(
    database_url: str, pg_dir: Path
) -> None:
    """WORKERS=2: a second run is refused the local Redis folder in use; after kill -9 of
    the first run, the next one stops the redis-server it left (pidfile in the folder)."""
    data = pg_dir / "data"
    env = {"WORKERS": "2", "DATABASE_URL": database_url, "DATA_DIR": str(data)}
    env |= {"REDIS_URL": "", "BROKER": ""}
    first_port = free_port()
    with running(["-m", "scripts.run"], {**env, "PORT": str(first_port)}) as first:
        line = first.wait_for("Redis: redis://127.0.0.1:")
        orphan = int(line.rsplit("(pid ", 1)[1].rstrip(")"))
        for _ in range(2):  # the supervisor binds the port before the workers start
            first.wait_for("Application startup complete")
        with running(["-m", "scripts.run"], {**env, "PORT": str(free_port())}) as second:
            refusal = second.wait_for("is in use by another run", timeout=30)
            assert str(data / "redis") in refusal and "REDIS_URL=" in refusal
            assert "DATA_DIR=/another/folder make run" in refusal
            assert second.proc.wait(timeout=30) == 2
        assert httpx.get(f"http://127.0.0.1:{first_port}/ready").status_code == 200
        workers = [int(x.split("[")[1].rstrip("]")) for x in first.lines if "Started server" in x]
        first.stop(signal.SIGKILL)
    for pid in workers:  # uvicorn's workers outlive their supervisor: stop them by pid
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert running_process(orphan)

    with running(["-m", "scripts.run"], {**env, "PORT": str(free_port())}) as server:
        assert f"(pid {orphan}) left running" in server.wait_for("stopped the Redis")
        assert not running_process(orphan)
        for _ in range(2):
            server.wait_for("Application startup complete")
        assert server.stop(signal.SIGTERM) == 0


def test_run_stops_cleanly_on_ctrl_c_twice(pg_dir: Path) -> None:
    """Ctrl-C, then Ctrl-C again while uvicorn is shutting down (one client answers the
    close, one never reads, so the stop is not instant): no traceback, the app's shutdown
    runs (1001 to the client), PostgreSQL stops, status 0."""
    data = pg_dir / "data"
    pgdata = data / "pg"
    port = free_port()
    with running(["-m", "scripts.run"], run_env(data, port)) as server:
        server.wait_for("Uvicorn running on")
        with connect(f"ws://127.0.0.1:{port}/counter") as client, deaf_client(port):
            assert client.recv(timeout=10) in ("1", "2")
            server.proc.send_signal(signal.SIGINT)
            server.wait_for("Shutting down")
            server.proc.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    client.recv(timeout=30)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert server.proc.wait(timeout=30) == 0
        lines = server.rest()
    output = "\n".join(lines)
    assert "Traceback" not in output and "aclose()" not in output, output
    assert "timeout graceful shutdown exceeded" not in output, output
    assert "Application shutdown complete" in output, output
    assert lines[-1] == "stopping the embedded PostgreSQL ...", output
    assert EmbeddedPostgres(pgdata).pid is None


def running_process(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever pid 1 is, or never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class deaf_client:
    """A WebSocket client that completes the handshake and then never reads again (so
    it never answers the server's close)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += self.sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 101"), answer

    def __enter__(self) -> "deaf_client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
