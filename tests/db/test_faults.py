"""PostgreSQL crashes under a steady write load (API.md: a database that is down makes data
endpoints answer 503, and the service recovers by itself): a real uvicorn, its own
PostgreSQL killed (immediate shutdown: no checkpoint, crash recovery on restart) and
started again while writers keep writing over keep-alive connections."""

import asyncio
import itertools
import signal
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx

from src.db.embedded import EmbeddedPostgres
from src.db.setup import prepare_database
from tests.helpers import AUTH, start_live_server

WRITERS = 8


async def test_a_database_crash_under_writes_loses_no_acknowledged_write(pg_dir: Path) -> None:
    """Every write answered 201 is in the database afterwards; every other answer is a 503
    problem (never a 500, never a dropped connection); writes succeed again soon after the
    database is back; the log shows no unhandled exception."""
    # Durable commits (not the test clusters' fast mode: with synchronous_commit off, a
    # crash forgets commits already acknowledged, which is that setting's promise).
    server = EmbeddedPostgres(pg_dir / "data")
    dsn = server.start()
    await prepare_database(dsn, seed=True)
    process, port = start_live_server(
        dsn, DB_CONNECT_TIMEOUT="1", DB_COMMAND_TIMEOUT="2", WRITE_RATE_PER_MIN="1000000"
    )
    acknowledged: dict[str, int] = {}
    answers: list[tuple[int, str]] = []
    numbers = itertools.count()
    restarted, recovered = asyncio.Event(), asyncio.Event()
    stop, answered = asyncio.Event(), asyncio.Event()

    async def until(condition: Callable[[], bool], seconds: float) -> None:
        """Wait, woken by each answer, until `condition` holds."""
        async with asyncio.timeout(seconds):
            while not condition():
                answered.clear()
                await answered.wait()

    async def writer(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            name = f"fault-{next(numbers)}"
            response = await http.post("/products", json={"product_name": name, "brand_id": 1})
            kind = response.json().get("type", "") if response.status_code != 201 else ""
            answers.append((response.status_code, kind))
            answered.set()
            if response.status_code == 201:
                acknowledged[name] = response.json()["product_id"]
                if restarted.is_set():
                    recovered.set()

    async def faults() -> None:
        await until(lambda: len(acknowledged) >= 200, 30)  # a steady load first
        await asyncio.to_thread(server.crash)
        await until(lambda: sum(status == 503 for status, _ in answers) >= 50, 30)
        await asyncio.to_thread(server.start)
        restarted.set()
        async with asyncio.timeout(15):  # back within seconds, by itself
            await recovered.wait()
        writes_after = len(acknowledged) + 200
        await until(lambda: len(acknowledged) >= writes_after, 30)
        stop.set()

    try:
        limits = httpx.Limits(max_connections=WRITERS, max_keepalive_connections=WRITERS)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=10, limits=limits
        ) as http:
            await asyncio.gather(faults(), *(writer(http) for _ in range(WRITERS)))
        statuses = {answer for answer in answers}
        assert statuses <= {(201, ""), (503, "database-unavailable")}, statuses
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT product_id, product_name FROM product WHERE product_name LIKE 'fault-%'"
            )
        finally:
            await conn.close()
        stored = {r["product_name"]: r["product_id"] for r in rows}
        missing = {n for n in acknowledged if stored.get(n) != acknowledged[n]}
        assert not missing, f"{len(missing)} acknowledged writes lost"
    finally:
        process.stop(signal.SIGTERM)
        server.destroy()
    lines = process.rest()
    log = "\n".join(lines)
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-4000:]
    outage_lines = [line for line in lines if "database" in line.lower()]
    assert len(outage_lines) < 20, "\n".join(outage_lines)  # a start, reminders, an end
